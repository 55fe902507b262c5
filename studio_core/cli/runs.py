"""The CLI commands that use a trained run or an exported bundle: ``predict``, ``evaluate``,
``export`` and ``score`` (torch only where a run is loaded: ``score`` stays torch-free)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from studio_core.cli.data import _warn
from studio_core.common.errors import StudioError
from studio_core.data.load import load_files, load_run_data, name_and_path


def _write_predictions(preds: Any, notes: list[str], out_path: str, task: str = "binary", classes: list[str] | None = None) -> int:
    """The predictions file of ``predict`` and ``score``: one row per input row, in order
    (``common.predictions``: ``prediction``, and ``p_<class>`` columns for multiclass)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from studio_core.common.predictions import prediction_columns

    _warn(notes)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.table({k: pa.array(v) for k, v in prediction_columns(task, preds, classes or []).items()}), out)
    print(f"{len(preds)} predictions written to {out}")
    return 0


def _load(path: str) -> Any:
    """A network run, or a LightGBM baseline (which predicts and evaluates the same way)."""
    from studio_core.runs.store import load_scorer

    return load_scorer(path)


def cmd_predict(args: argparse.Namespace) -> int:
    from studio_core.runs.store import predict_file

    _not_the_input(args.out, args.data)
    run = _load(args.run)
    preds, _ws, _table, notes = predict_file(run, args.data, args.allow_missing)
    return _write_predictions(preds, notes, args.out, run.preprocessor.task, run.preprocessor.classes_)


def _not_the_input(out: str, data: str) -> None:
    """Refuse an ``--out`` that is the input file itself (it would be overwritten by its own scores)."""
    o, d = Path(out), Path(name_and_path(data)[1])
    if o.exists() and d.exists() and o.resolve() == d.resolve():
        raise StudioError(f"--out {out} is the input file; write the predictions to another file")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics of a run on a labelled file: all its rows, or with ``--part`` the run's own
    validation or test rows re-created from the file (refused when the file no longer gives them)."""
    from studio_core.data.source import Source
    from studio_core.runs.evaluation import evaluate, run_split

    run = _load(args.run)
    if args.part:
        ws, table, notes = load_run_data(run.spec.data, [args.data])
        split = run_split(run, ws, table)
        source, columns = split.part(args.part), set(split.column_types)
    else:
        ws, tables, notes = load_files([args.data])
        loaded = ws.table(tables[0])
        source, columns = Source(ws.con, loaded.ref), set(loaded.columns)
    _warn(notes)
    scored, warnings = evaluate(run, source, columns, args.allow_missing, own_part=bool(args.part))
    _warn(warnings)
    print(json.dumps({"rows": len(scored), **({"part": args.part} if args.part else {}), **scored.metrics()}, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from studio_core.export.bundle import export_bundle
    from studio_core.export.model_card import figures_text

    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise StudioError(f"--out {out} should be a .zip file name; pass e.g. --out bundle.zip")
    from studio_core.runs.lightgbm_run import LightGBMRun

    run = _load(args.run)
    if isinstance(run, LightGBMRun):
        return _export_lightgbm(run, out, args)
    ws, table, notes = load_run_data(run.spec.data, args.data) if args.data else (None, None, [])
    _warn(notes)
    figures = export_bundle(run, out, ws, table, int8=args.int8)
    print(figures_text(figures))
    parity = figures["parity"]
    if parity.get("raw_unavailable"):
        _warn([f"no raw-row graph in the bundle ({parity['raw_unavailable']}); `wdstudio score` applies preprocess.json in Python, then model.onnx"])
    if not parity["ok"]:
        what = (f"an ONNX graph differs from the trained model by {parity['tolerance_used']:.3g} times the parity tolerance "
                f"({parity['tolerance']})")
        if not args.allow_mismatch:
            out.unlink(missing_ok=True)  # nothing downstream may pick up a bundle that scores differently
            raise StudioError(f"{what}; the bundle was not kept. Pass --allow-mismatch to keep it (its model card says it failed)")
        _warn([f"{what}; kept because of --allow-mismatch (the model card says it failed)"])
    return 0


def _export_lightgbm(run: Any, out: Path, args: argparse.Namespace) -> int:
    """A LightGBM baseline's bundle: its raw graph and trees, checked against the booster."""
    from studio_core.export.lightgbm_bundle import export_lightgbm_bundle

    if args.int8:
        raise StudioError("--int8 quantises a network's weights; a LightGBM bundle has none: export it without --int8")
    ws, table, notes = load_run_data(run.spec.data, args.data) if args.data else (None, None, [])
    _warn(notes)
    figures = export_lightgbm_bundle(run, out, ws, table)
    p = figures["parity"]
    print(f"bundle written to {out}: raw.onnx (raw columns -> {'prediction' if run.preprocessor.task != 'multiclass' else 'prob_k'}) and "
          f"model.onnx (the trees); parity on {p['rows_source']}: largest difference {p['raw_prediction_max_abs_diff']:.3g}, "
          f"{p['rows_over_1e-5']:,} of {p['rows']:,} rows over 1e-5 ({'ok' if p['ok'] else 'OUTSIDE the tolerance'})")
    if not p["ok"] and not args.allow_mismatch:
        out.unlink(missing_ok=True)
        raise StudioError("the raw graph differs from LightGBM by more than the parity tolerance; the bundle was not kept. "
                          "Pass --allow-mismatch to keep it (its model card says it failed)")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from studio_core.export.scoring import load_bundle, score_file

    _not_the_input(args.out, args.data)
    bundle = load_bundle(args.bundle)
    preds, notes = score_file(bundle, args.data, int8=args.int8, allow_missing=args.allow_missing)
    return _write_predictions(preds, notes, args.out, bundle.preprocessor.task, bundle.preprocessor.classes_)


def cmd_baseline(args: argparse.Namespace) -> int:
    """A baseline (constant, or the wide part alone) trained on exactly a run's split."""
    from studio_core.cli.track import log_runs, mlflow_target
    from studio_core.runs.baselines import train_baseline
    from studio_core.runs.folder import check_out_dir, run_record
    from studio_core.runs.results import result_line

    check_out_dir(args.out)
    spec, metrics = run_record(args.run)
    uri = mlflow_target(args)
    ws, table, notes = load_run_data(spec.data, args.data)
    _warn(notes)
    if table:
        spec.data.table = table
    done = train_baseline(args.kind, spec, metrics, ws, args.out)
    print(result_line(done.run_dir, done.metrics))
    log_runs(args, uri, [done.run_dir])
    return 0
