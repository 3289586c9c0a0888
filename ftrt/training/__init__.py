"""Training of ftrt models (needs torch and the ``train`` extra)."""
