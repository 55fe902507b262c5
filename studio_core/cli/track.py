"""``--mlflow URI`` on ``train`` and ``baseline``, and ``wdstudio track``: runs logged to MLflow
(see tracking/mlflow_log.py).  The store is checked before any training, so a wrong URI costs
nothing; a log that fails after training keeps the run on disk and says how to log it later."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from studio_core.cli.data import _warn
from studio_core.common.errors import StudioError


def add_mlflow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow", metavar="URI",
                   help="also log the run to this MLflow tracking store, e.g. sqlite:///mlflow.db (default: $MLFLOW_TRACKING_URI when set)")
    p.add_argument("--mlflow-experiment", metavar="NAME", help="the MLflow experiment (default: one per table and label, 'table: label')")


def mlflow_target(args: argparse.Namespace) -> str | None:
    """The tracking URI to log to, checked now (before training): ``--mlflow`` must work; a URI
    only from ``MLFLOW_TRACKING_URI`` is skipped with a warning when mlflow is not installed."""
    from studio_core.tracking.mlflow_log import ENV, INSTALL, check_store, tracking_uri

    uri = tracking_uri(getattr(args, "mlflow", None))
    if uri is None:
        return None
    if not getattr(args, "mlflow", None):
        try:
            import mlflow  # noqa: F401
        except ImportError:
            _warn([f"{ENV} is set but mlflow is not installed, so the run is not logged there; run {INSTALL} to log it"])
            return None
    check_store(uri)
    return uri


def log_runs(args: argparse.Namespace, uri: str | None, dirs: list[str | Path]) -> None:
    """Log each run directory; print where each went (or, on failure, how to log it later)."""
    if uri is None:
        return
    from studio_core.tracking.mlflow_log import log_run

    for d in dirs:
        try:
            done = log_run(d, uri, getattr(args, "mlflow_experiment", None))
        except StudioError as exc:
            raise StudioError(f"{exc}; the run is kept at {d}: log it later with `wdstudio track --run {d} --mlflow {uri}`") from None
        _warn(list(done.notes))
        print(f"logged {d} to MLflow {uri}: experiment {done.experiment_id}, run {done.run_id} "
              f"({len(done.artifacts)} artifacts{', ONNX model' if done.model else ''})")


def cmd_track(args: argparse.Namespace) -> int:
    from studio_core.runs.folder import run_record

    uri = mlflow_target(args)
    if uri is None:
        raise StudioError(f"no tracking store given; pass --mlflow URI (e.g. sqlite:///{os.getcwd()}/mlflow.db) or set MLFLOW_TRACKING_URI")
    for d in args.run:
        run_record(d)  # every folder is a run before anything is logged
    log_runs(args, uri, args.run)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("track", help="log finished runs to MLflow: spec as params, epoch metrics, test metrics with intervals, report, card, ONNX model")
    p.add_argument("--run", action="append", required=True, help="a run directory (repeatable)")
    add_mlflow_options(p)
    p.set_defaults(func=cmd_track)
