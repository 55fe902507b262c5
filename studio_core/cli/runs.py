"""The CLI commands that use a trained run or an exported bundle: ``predict``, ``evaluate``,
``export`` and ``score`` (torch only where a run is loaded: ``score`` stays torch-free)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from studio_core.cli.data import _load, _name_and_path, _warn
from studio_core.common.errors import StudioError
from studio_core.data.workspace import Workspace


def _write_predictions(preds: Any, notes: list[str], out_path: str) -> int:
    """The predictions file of ``predict`` and ``score``: one ``prediction`` per input row, in order."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    _warn(notes)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.table({"prediction": pa.array(preds, pa.float64())}), out)
    print(f"{len(preds)} predictions written to {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from studio_core.runs.store import load_run, predict_file

    _not_the_input(args.out, args.data)
    preds, _ws, _table, notes = predict_file(load_run(args.run), args.data, args.allow_missing)
    return _write_predictions(preds, notes, args.out)


def _not_the_input(out: str, data: str) -> None:
    """Refuse an ``--out`` that is the input file itself (it would be overwritten by its own scores)."""
    o, d = Path(out), Path(_name_and_path(data)[1])
    if o.exists() and d.exists() and o.resolve() == d.resolve():
        raise StudioError(f"--out {out} is the input file; write the predictions to another file")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics of a run on a labelled file: all its rows, or with ``--part`` the run's own
    validation or test rows re-created from the file (refused when the file no longer gives them)."""
    from studio_core.data.source import Source
    from studio_core.features.input_columns import check_input_columns
    from studio_core.runs.evaluation import score_rows
    from studio_core.runs.store import load_run

    run = load_run(args.run)
    prep = run.preprocessor
    if args.part:
        ws, table = _run_data(run, [args.data])
        split = _split_of(run, ws, table)
        source, columns = split.part(args.part), set(split.column_types)
    else:
        ws, tables, notes = _load([args.data])
        _warn(notes)
        loaded = ws.table(tables[0])
        source, columns = Source(ws.con, loaded.ref), set(loaded.columns)
    if prep.label not in columns:
        raise StudioError(f"the data has no label column {prep.label!r}; evaluate needs labelled rows (use predict otherwise)")
    _warn(check_input_columns(prep, columns, args.allow_missing))
    if not args.part:
        _warn(_training_rows_warning(run, source, columns))
    scored = score_rows(run.model, prep, source, available=columns)
    if len(scored) == 0:
        raise StudioError("no rows with a label to evaluate; load labelled rows")
    out = {"rows": len(scored), **({"part": args.part} if args.part else {}), **scored.metrics()}
    print(json.dumps(out, indent=2))
    return 0


def _training_rows_warning(run: Any, source: Any, columns: set[str]) -> list[str]:
    """A warning when the rows to evaluate hold the run's training rows (its split's sketch)."""
    from studio_core.data.split import training_overlap

    got = training_overlap(source.con, source.relation, columns, run.metrics.get("split") or {})
    if not got or got[0] == 0:
        return []
    found, size = got
    n_train = (run.metrics.get("split") or {}).get("counts", {}).get("train", 0)
    return [f"these rows include the run's training rows ({found} of a {size}-row sample of them found: about {found / size:.0%} of its "
            f"{n_train:,} training rows); figures on rows the model was fitted on are optimistic; for the honest figure evaluate "
            "new rows, or the run's own test rows with --part test"]


def _run_data(run: Any, items: list[str]) -> tuple[Workspace, str | None]:
    """A workspace holding a run's training data from ``--data`` items (a single unnamed file
    is loaded under the run's table name), and the table to use in place of the spec's."""
    d = run.spec.data
    ws = Workspace(allowed_files=[_name_and_path(item)[1] for item in items])
    notes: list[str] = []
    loaded = []
    for item in items:
        name, path = _name_and_path(item)
        if not name and len(items) == 1 and d.table and not d.sql.strip():
            name = d.table  # the training table's name, so the spec's data section applies as is
        result = ws.load(path, name or None)
        loaded.append(result.table)
        notes += list(result.warnings)
    _warn(notes)
    table = None
    if not d.sql.strip() and d.table not in loaded:
        if len(loaded) != 1:
            raise StudioError(f"the run trained on table {d.table!r}; name it in --data, e.g. --data {d.table}=PATH")
        table = loaded[0]
    return ws, table


def _split_of(run: Any, ws: Workspace, table: str | None) -> Any:
    """The run's split re-created from the loaded data (refused when the rows differ)."""
    import copy

    from studio_core.data.split import split_for

    data = copy.deepcopy(run.spec.data)
    if table:
        data.table, data.sql = table, ""
    return split_for(ws, run.spec, run.metrics, data=data)


def cmd_export(args: argparse.Namespace) -> int:
    from studio_core.export.bundle import export_bundle
    from studio_core.export.model_card import figures_text
    from studio_core.runs.store import load_run

    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise StudioError(f"--out {out} should be a .zip file name; pass e.g. --out bundle.zip")
    run = load_run(args.run)
    ws, table = _run_data(run, args.data) if args.data else (None, None)
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


def cmd_score(args: argparse.Namespace) -> int:
    from studio_core.export.scoring import score_file

    _not_the_input(args.out, args.data)
    preds, notes = score_file(args.bundle, args.data, int8=args.int8, allow_missing=args.allow_missing)
    return _write_predictions(preds, notes, args.out)
