"""Shipping a run: ONNX graphs (raw rows included), INT8, the bundle, its torch-free scorer, the card."""
