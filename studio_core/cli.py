"""``wdstudio`` / ``python -m studio_core``: profile, query, suggest, train, predict, evaluate, export, score.

Any problem with the user's files or arguments ends with exit status 2 and one ``error: …``
line naming the problem and the fix -- never a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from .errors import Cancelled, StudioError
from .files import read_text
from .spec import DataSpec, Spec
from .workspace import PARQUET_SUFFIXES, Workspace

QUERY_TIMEOUT_S = 300.0
LAUNCHED_ENV = "WDSTUDIO_LAUNCHED"  # set by --nproc for its ranks
VIEW_BYTES = 1 << 30  # training reads CSV files larger than this in place instead of loading them


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, instead of argparse's usage dump
        raise StudioError(f"{message}; see `{self.prog} --help`")


def _name_and_path(item: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (a path that itself contains '=' is taken as a path)."""
    if "=" in item and not Path(item).exists():
        name, _, path = item.partition("=")
        return name, Path(path)
    return "", Path(item)


MEMORY_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
MIN_DUCKDB_MEMORY = 128 * 10**6


def _duckdb_memory() -> str:
    """``WDSTUDIO_DUCKDB_MEMORY`` (default 2GB): DuckDB's memory limit while training large data."""
    import re

    text = os.environ.get("WDSTUDIO_DUCKDB_MEMORY", "2GB").strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", text)
    size = float(m.group(1)) * MEMORY_UNITS[m.group(2).upper()] if m and m.group(2).upper() in MEMORY_UNITS else None
    if size is None or size < MIN_DUCKDB_MEMORY:
        raise StudioError(f"WDSTUDIO_DUCKDB_MEMORY={text!r} is not a memory size of at least 128MB; set it like 2GB or 512MB, or unset it")
    return text


def _load(paths: list[str], sandbox: bool = False, large: bool = False) -> tuple[Workspace, list[str], list[str]]:
    """A workspace with the files loaded.  ``large`` (training) leaves Parquet files and CSV
    files over ``VIEW_BYTES`` in place as views, caps DuckDB's memory and lets it spill to
    the temporary folder, so tables larger than memory can be trained on.  DuckDB may read
    only the given files: a spec's ``data.sql`` (perhaps written by someone else) cannot read
    other files into a run's vocabularies and so into its bundle."""
    files = [_name_and_path(item)[1] for item in paths]
    if sandbox:
        ws = Workspace(allowed_files=files, query_timeout_s=QUERY_TIMEOUT_S)
    elif large:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # processes on this machine under torchrun
        spill = tempfile.mkdtemp(prefix="wdstudio-duckdb-")
        atexit.register(shutil.rmtree, spill, True)
        ws = Workspace(threads=max(1, (os.cpu_count() or 1) // local), memory_limit=_duckdb_memory(), temp_directory=spill,
                       allowed_files=files)
    else:
        ws = Workspace(allowed_files=files)
    names, notes = [], []
    for item in paths:
        name, path = _name_and_path(item)
        as_view = large and path.is_file() and (path.suffix.lower() in PARQUET_SUFFIXES or path.stat().st_size > VIEW_BYTES)
        result = ws.load(path, name or None, as_view=as_view)
        names.append(result.table)
        notes += list(result.warnings)
    return ws, names, notes


def _sources(tables: list[str], paths: list[str]) -> dict[str, str]:
    return {t: str(_name_and_path(p)[1].resolve()) for t, p in zip(tables, paths)}


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def _data_spec(args: argparse.Namespace, tables: list[str], base: DataSpec | None = None) -> DataSpec:
    data = DataSpec(**vars(base)) if base else DataSpec()
    if getattr(args, "sql", None):
        data.sql, data.table = args.sql, ""
    elif getattr(args, "table", None):
        data.table = args.table
    elif not data.table and not data.sql:
        data.table = tables[0] if tables else ""
    elif data.table and not data.sql and tables and data.table not in tables:
        raise StudioError(f"the spec reads table {data.table!r}, but the data loaded is {', '.join(map(repr, tables))}; "
                          f"name it with --data {data.table}=PATH, or pass --table {tables[0]}")
    if getattr(args, "label", None):
        data.label = args.label
    if not data.label:
        raise StudioError("no label given; pass --label COLUMN")
    return data


def _progress_printer(stream: Any = None, task: str = "binary"):
    stream = stream or sys.stderr
    tty = stream.isatty()
    # regression trains on the standardised label: its loss is not on the RMSE's scale, so say so
    loss_name = "train log loss" if task == "binary" else "train MSE (standardised label)"

    def show(p: Any) -> None:
        if p.kind == "step" and tty:
            frac = p.step / max(p.total_steps, 1)
            bar = "#" * int(frac * 24)
            stream.write(f"\repoch {p.epoch}/{p.epochs} [{bar:<24}] {frac:4.0%} loss {p.train_loss:.4f} {p.rows_per_s / 1000:.0f}k rows/s ETA {p.eta_s:.0f}s ")
            stream.flush()
        elif p.kind == "epoch":
            val = " ".join(f"{k} {v:.4f}" for k, v in p.val.items() if k != "loss")
            stream.write(("\r" if tty else "") + f"epoch {p.epoch}/{p.epochs} {loss_name} {p.train_loss:.4f} | val {val} | {p.rows_per_s / 1000:.0f}k rows/s\n")
            stream.flush()

    return show


def cmd_profile(args: argparse.Namespace) -> int:
    from .profile import profile

    ws, tables, notes = _load(args.data)
    _warn(notes)
    out = {}
    for t in [args.table] if args.table else tables:
        out[t] = [{**vars(c), "null_share": round(c.null_share, 4)} for c in profile(ws, t)]
    print(json.dumps(out, indent=2, default=str, ensure_ascii=False))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """User SQL through the studio's gate: a sandbox that reads only the given files, one
    read-only statement, a timeout."""
    ws, _tables, notes = _load(args.data, sandbox=True)
    _warn(notes)
    if args.out:  # every row, streamed to the file batch by batch
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"{ws.run_sql(args.sql, out=out)} rows written to {out}")
        return 0
    result = ws.run_sql(args.sql, limit=args.limit)
    if hasattr(result, "ref"):  # CREATE TABLE/VIEW ... AS: show what it holds
        result = ws.run_sql(f"SELECT * FROM {result.ref}", limit=args.limit)
    print(result.to_csv(index=False), end="")
    if result.attrs.get("note"):
        _warn([result.attrs["note"]])
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from .results import suggestion_lines
    from .suggest import suggest

    ws, tables, notes = _load(args.data)
    _warn(notes)
    data = _data_spec(args, tables)
    data.sources = _sources(tables, args.data)
    s = suggest(ws, data, max_crosses=args.crosses, triples=args.triples)
    report = {"task": s.spec.data.task, "reason": s.task_reason, "roles": [vars(r) for r in s.roles],
              "crosses": [vars(c) for c in s.crosses]}
    if args.out:  # the file holds the spec; the console gets a summary, not the roles again
        Path(args.out).write_text(s.spec.to_json(), encoding="utf-8")
        print("\n".join([f"spec written to {args.out}", *suggestion_lines(s)]))
        return 0
    print(json.dumps({**report, "spec": s.spec.to_dict()}, indent=2, default=float, ensure_ascii=False))
    return 0


def _train_spec(args: argparse.Namespace) -> tuple[Spec, Workspace, list[str]]:
    """The spec to train (given, or suggested from the data) and a workspace with the data."""
    from .results import suggestion_lines
    from .suggest import suggest

    base = None
    if args.spec:
        base = Spec.from_json(read_text(args.spec, "--spec"))
    if getattr(args, "preprocessing", None):
        read_text(args.preprocessing, "--preprocessing")  # refused before the data is read or a spec suggested
    paths = args.data or [f"{k}={v}" for k, v in (base.data.sources.items() if base else [])]
    if not paths:
        raise StudioError("no data given; pass --data PATH (or a spec with data.sources)")
    ws, tables, notes = _load(paths, large=True)
    if not os.environ.get(LAUNCHED_ENV):  # the launcher has printed them once already
        _warn(notes)
    if base is None:
        data = _data_spec(args, tables)
        talk = not getattr(args, "quiet", False) and not os.environ.get(LAUNCHED_ENV)
        if talk:
            print(f"no --spec given: suggesting features for {data.label!r} from table {data.table or tables[0]!r}…", file=sys.stderr, flush=True)
        suggested = suggest(ws, data)
        if talk:
            print("\n".join(f"  {line}" for line in suggestion_lines(suggested)), file=sys.stderr, flush=True)
        spec = suggested.spec
    else:
        spec = base
        spec.data = _data_spec(args, tables, base.data)
    spec.data.sources = _sources(tables, paths)
    if args.epochs is not None:
        spec.train.epochs = args.epochs
    if args.device:
        spec.train.device = args.device
    return spec, ws, paths


def _read_json(path: str, option: str) -> dict[str, Any]:
    text = read_text(path, option)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StudioError(f"cannot read {option} {path} ({exc.__class__.__name__}); pass the JSON file it names") from None


def _check_nproc(n: int) -> None:
    cores = os.cpu_count() or 1
    if n < 0:
        raise StudioError(f"--nproc {n} is not a number of processes; pass 1 or more")
    if n > cores:
        raise StudioError(f"--nproc {n} is more than this machine's {cores} CPU cores; pass at most {cores} "
                          "(more processes than cores only slow training down)")


def _shipped_preprocessing(args: argparse.Namespace, spec: Spec) -> dict[str, Any] | None:
    """``--preprocessing``: a fitted state that must belong to ``spec`` (same label, task and
    features), or None to fit here."""
    if not args.preprocessing:
        return None
    from .preprocess import Preprocessor

    state = _read_json(args.preprocessing, "--preprocessing")
    try:
        prep = Preprocessor.from_state(state)
    except Exception as exc:  # noqa: BLE001 - any malformed state: one message naming the file
        raise StudioError(f"--preprocessing {args.preprocessing} is not a preprocess.json written by wdstudio "
                          f"({type(exc).__name__}: {str(exc)[:80]}); pass the preprocess.json of a run") from None
    d = spec.data
    theirs, ours = (prep.label, prep.task, dataclasses.asdict(prep.features)), (d.label, d.task, dataclasses.asdict(spec.features))
    if theirs != ours:
        what = [n for n, a, b in zip(("label", "task", "features"), theirs, ours) if a != b]
        raise StudioError(f"--preprocessing {args.preprocessing} was fitted for another spec (its {', '.join(what)} differ); "
                          "pass the spec.json it was fitted with, or leave --preprocessing out to fit it here")
    return state


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so every ``finally`` and ``with`` cleans up.
    Not a KeyboardInterrupt: CPython gives those special treatment at exit (a process once
    printed its error line and then died by SIGINT)."""


def _raise_terminated(*_: object) -> None:
    raise Terminated


def cmd_train(args: argparse.Namespace) -> int:
    """SIGTERM / SIGHUP stop training like Ctrl-C: through every cleanup (block files, the
    DuckDB spill folder, the launcher's folder) and with an ``error:`` line.  A torchrun rank
    instead exits 143 on SIGTERM (torchrun stops the other ranks so when one fails), also
    through the cleanup."""
    from .prepare import check_out_dir

    rank = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    if not rank:  # the launcher (or one process) checks; rank 0 writes
        _check_nproc(args.nproc)
        check_out_dir(args.out)
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM,) if rank else (signal.SIGTERM, signal.SIGHUP):
            handlers[sig] = signal.signal(sig, (lambda *_: sys.exit(143)) if rank else _raise_terminated)
    try:
        return _launch(args) if args.nproc and args.nproc > 1 else _train_here(args)  # the launcher never imports torch
    finally:
        for sig, previous in handlers.items():
            signal.signal(sig, previous)


def _train_here(args: argparse.Namespace) -> int:
    from .distributed import ranks_from_env, stop
    from .pipeline import train

    ranks = ranks_from_env()
    spec, ws, _paths = _train_spec(args)
    preprocessing = _shipped_preprocessing(args, spec)
    main_rank = ranks is None or ranks.is_main
    stop_event = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop_event.set()) if threading.current_thread() is threading.main_thread() and ranks is None else None
    printer = _progress_printer(task=spec.data.task)
    if ranks is not None:  # rank 0 prints: its rate times the ranks (their shards differ by a row or so)
        world, show = ranks.world, printer
        printer = lambda p: show(dataclasses.replace(p, rows_per_s=p.rows_per_s * world))  # noqa: E731
    try:
        outcome = train(spec, ws, args.out, [] if args.quiet or not main_rank else [printer], stop_event, ranks, preprocessing)
    except Cancelled:
        raise StudioError("training interrupted; nothing was written") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        stop()
    if not main_rank:
        return 0
    for note in outcome.metrics.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    from .results import result_line

    print(result_line(outcome.run_dir, outcome.metrics))
    return 0


def _launch(args: argparse.Namespace) -> int:
    """``--nproc N``: validate and fit the preprocessing here, once, then run N ranks with
    torchrun on this machine, shipping the spec and the fitted state to every rank as JSON.
    A rank's ``error: …`` line is passed on as this command's one error line."""
    from .prepare import check_processes, fit_preprocessor, prepare  # no torch in this process: the ranks load it
    from .preprocess import Preprocessor

    spec, ws, paths = _train_spec(args)
    check_processes(spec, int(args.nproc))
    shipped = _shipped_preprocessing(args, spec)
    split, _streaming = prepare(spec, ws, int(args.nproc))  # validates the spec against the data
    prep = Preprocessor.from_state(shipped) if shipped else fit_preprocessor(spec, split)
    ws.con.close()
    with tempfile.TemporaryDirectory(prefix="wdstudio-launch-") as tmp:  # the ranks' temporary files live here too
        spec_path, prep_path = Path(tmp, "spec.json"), Path(tmp, "preprocess.json")
        spec_path.write_text(spec.to_json(), encoding="utf-8")
        prep_path.write_text(prep.to_json(), encoding="utf-8")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(args.nproc)}",
                   "-m", "studio_core", "train", "--spec", str(spec_path), "--preprocessing", str(prep_path), "--out", args.out]
        for item in paths:
            command += ["--data", item]
        if args.quiet:
            command.append("--quiet")
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(args.nproc)))),
               "TMPDIR": tmp, LAUNCHED_ENV: "1"}
        errors: list[str] = []
        with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as proc:
            try:
                for line in proc.stderr or []:
                    if line.startswith("error: "):
                        errors.append(line[7:].split("error: ")[0].strip())
                    elif line.startswith(("epoch ", "warning: ", "note: ", "\repoch ")):
                        sys.stderr.write(line)
            except (KeyboardInterrupt, Terminated):  # Ctrl-C, SIGTERM or SIGHUP here: stop the ranks, wait for their cleanup, then ours
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise
        if proc.returncode:
            # the rank that failed first says why; the others then report lost connections (internal errors)
            cause = next((e for e in errors if not e.startswith("internal error")), errors[0] if errors else "")
            if not cause:
                raise StudioError(f"training with {args.nproc} processes failed (torchrun exit status {proc.returncode}); "
                                  "run it with --nproc 1 to see the problem")
            _error(cause)
            return 1 if cause.startswith("internal error") else 2
    return 0


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
    from .runs import load_run, predict_file

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
    from .encoders import Source
    from .evaluation import score_rows
    from .input_columns import check_input_columns
    from .runs import load_run

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
    from .split import training_overlap

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

    from .split import split_for

    data = copy.deepcopy(run.spec.data)
    if table:
        data.table, data.sql = table, ""
    return split_for(ws, run.spec, run.metrics, data=data)


def cmd_export(args: argparse.Namespace) -> int:
    from .bundle import export_bundle
    from .model_card import figures_text
    from .runs import load_run

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
    from .scoring import score_file

    _not_the_input(args.out, args.data)
    preds, notes = score_file(args.bundle, args.data, int8=args.int8, allow_missing=args.allow_missing)
    return _write_predictions(preds, notes, args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wdstudio", description="Wide & Deep Studio engine: train, score and inspect Wide & Deep models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    data_help = "CSV or Parquet file, optionally NAME=PATH; repeat for several tables"

    p = sub.add_parser("profile", help="profile the columns of data files")
    p.add_argument("--data", action="append", required=True, help=data_help)
    p.add_argument("--table", help="profile only this table")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("query", help="run one read-only SQL statement over data files (the studio's sandbox and gate)")
    p.add_argument("--data", action="append", required=True, help=data_help)
    p.add_argument("--sql", required=True, help="one SELECT / WITH query, or CREATE TABLE|VIEW name AS SELECT ...")
    p.add_argument("--out", help="write all result rows to this CSV instead of printing")
    p.add_argument("--limit", type=int, default=1000, help="rows printed when --out is not given (default 1000)")
    p.set_defaults(func=cmd_query)

    for name, func, hlp in (("suggest", cmd_suggest, "suggest a spec for a label"), ("train", cmd_train, "train a run")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--data", action="append", required=name == "suggest", help=data_help)
        p.add_argument("--sql", help="SELECT producing the training rows (tables are named after the files)")
        p.add_argument("--table", help="train on this table (default: the first --data)")
        p.add_argument("--label", help="the column to predict")
        if name == "suggest":
            p.add_argument("--crosses", type=int, default=3, help="number of crosses to put in the spec")
            p.add_argument("--triples", action="store_true", help="also rank 3-column crosses")
            p.add_argument("--out", help="write the suggested spec JSON here")
        else:
            p.add_argument("--spec", help="spec JSON (default: the suggested spec)")
            p.add_argument("--epochs", type=int, help="override train.epochs")
            p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override train.device")
            p.add_argument("--out", required=True, help="run directory to write")
            p.add_argument("--quiet", action="store_true", help="no progress output")
            p.add_argument("--nproc", type=int, default=0, help="train with N processes on this machine (torchrun + DistributedDataParallel)")
            p.add_argument("--preprocessing", help="a fitted preprocess.json to use instead of fitting (what --nproc ships to its ranks)")
        p.set_defaults(func=func)

    p = sub.add_parser("predict", help="score a file with a run")
    p.add_argument("--allow-missing", action="store_true", help="score even when feature columns are missing or look renamed (as missing values)")
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="metrics of a run on a labelled file")
    p.add_argument("--allow-missing", action="store_true", help="score even when feature columns are missing or look renamed (as missing values)")
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True, help="a labelled file; with --part, the run's training data")
    p.add_argument("--part", choices=["validation", "test"], help="score only the run's own validation or test rows of the file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="write a run as a bundle zip (ONNX graphs, manifest, model card)")
    p.add_argument("--run", required=True, help="run directory written by `wdstudio train`")
    p.add_argument("--out", required=True, help="bundle zip to write")
    p.add_argument("--int8", action="store_true", help="also write INT8-quantised graphs, with their measured size and score changes")
    p.add_argument("--allow-mismatch", action="store_true", help="keep the bundle (exit 0) even when a graph fails the parity check")
    p.add_argument("--data", action="append", help="the run's training data (for validation figures); " + data_help)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("score", help="score a file with a bundle zip (onnxruntime, no PyTorch)")
    p.add_argument("--allow-missing", action="store_true", help="score even when feature columns are missing or look renamed (as missing values)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--int8", action="store_true", help="score with the bundle's INT8 graph")
    p.set_defaults(func=cmd_score)
    return parser


def _error(message: str) -> None:
    """The one error line, written in one call: ranks sharing a pipe cannot interleave it."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except StudioError as exc:
        _error(' '.join(str(exc).split()))
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated (SIGTERM or SIGHUP)", file=sys.stderr)
        return 143
    except Exception as exc:  # data problems surfacing from a library: still one line, no traceback
        import duckdb

        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            _error(f"no space left on the disk of {exc.filename or tempfile.gettempdir()}; free some space, "
                   "or point TMPDIR (temporary files) or --out at a bigger disk")
            return 2
        if isinstance(exc, (duckdb.Error, UnicodeError, OSError, MemoryError)):
            _error(f"{' '.join(str(exc).split())[:300]}; check the input files")
            return 2
        _error(f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); please report it")
        return 1
