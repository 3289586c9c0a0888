"""ftrt: fundus-image restoration from PyTorch training to verified inference."""

__version__ = "0.1.0"
