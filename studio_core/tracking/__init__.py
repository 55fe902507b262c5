"""Tracking: a finished run logged to an MLflow tracking server (the optional ``mlflow`` extra) --
its spec as params, per-epoch metrics with steps, test metrics with intervals, the report and
model card as artifacts, and its raw-row ONNX model.  The rest of the engine never imports
mlflow; this stage does only when asked (``--mlflow URI`` or ``MLFLOW_TRACKING_URI``)."""
