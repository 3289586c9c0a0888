"""Serving ftrt's models from Triton Inference Server: the model repository (``ftrt triton export``)."""
