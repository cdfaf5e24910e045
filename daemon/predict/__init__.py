"""Predict: the model bundle (one onnxruntime session), the window it reads, and the sampler
that picks the next token from what it says."""
