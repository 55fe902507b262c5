"""``wdstudio`` / ``python -m studio_core``: profile, query, suggest, train, tune, compare, predict, evaluate, export, score.

Any problem with the user's files or arguments ends with exit status 2 and one ``error: …``
line naming the problem and the fix -- never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import tempfile
import warnings
from pathlib import Path

from studio_core.cli.compare import add_parser as add_compare_parser
from studio_core.cli.data import _data_spec, _error, _warn
from studio_core.cli.report import add_parser as add_report_parser
from studio_core.cli.runs import cmd_baseline, cmd_evaluate, cmd_export, cmd_predict, cmd_score
from studio_core.cli.track import add_mlflow_options
from studio_core.cli.track import add_parser as add_track_parser
from studio_core.cli.train import Terminated, cmd_train
from studio_core.cli.tune import add_parser as add_tune_parser
from studio_core.common.errors import StudioError
from studio_core.data.load import load_files, source_paths


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, instead of argparse's usage dump
        raise StudioError(f"{message}; see `{self.prog} --help`")


def cmd_profile(args: argparse.Namespace) -> int:
    from studio_core.data.profile import profile

    ws, tables, notes = load_files(args.data)
    _warn(notes)
    out = {}
    for t in [args.table] if args.table else tables:
        out[t] = [{**vars(c), "null_share": round(c.null_share, 4)} for c in profile(ws, t)]
    print(json.dumps(out, indent=2, default=str, ensure_ascii=False))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """User SQL through the studio's gate: a sandbox that reads only the given files, one
    read-only statement, a timeout."""
    ws, _tables, notes = load_files(args.data, sandbox=True)
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
    from studio_core.features.suggest import suggest
    from studio_core.runs.results import suggestion_lines

    ws, tables, notes = load_files(args.data)
    _warn(notes)
    data = _data_spec(args, tables)
    data.sources = source_paths(tables, args.data)
    s = suggest(ws, data, max_crosses=args.crosses, triples=args.triples)
    report = {"task": s.spec.data.task, "reason": s.task_reason, "roles": [vars(r) for r in s.roles],
              "crosses": [vars(c) for c in s.crosses]}
    if args.out:  # the file holds the spec; the console gets a summary, not the roles again
        Path(args.out).write_text(s.spec.to_json(), encoding="utf-8")
        print("\n".join([f"spec written to {args.out}", *suggestion_lines(s)]))
        return 0
    print(json.dumps({**report, "spec": s.spec.to_dict()}, indent=2, default=float, ensure_ascii=False))
    return 0


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
            p.add_argument("--max-minutes", type=float, help="override train.max_minutes: a wall-clock budget for training (0 = none)")
            p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override train.device")
            p.add_argument("--out", required=True, help="run directory to write")
            p.add_argument("--quiet", action="store_true", help="no progress output")
            p.add_argument("--nproc", type=int, default=0, help="train with N processes on this machine (torchrun + DistributedDataParallel)")
            p.add_argument("--preprocessing", help="a fitted preprocess.json to use instead of fitting (what --nproc ships to its ranks)")
            p.add_argument("--ablations", action="store_true",
                           help="also train the wide-only and deep-only variants on the same split (OUT.wide-only, OUT.deep-only) and print the leaderboard")
            p.add_argument("--seeds", type=int, default=1,
                           help="train N training seeds of each run on the same split (OUT.seed-2, ...); the leaderboard gives mean ± spread over seeds")
            add_mlflow_options(p)
        p.set_defaults(func=func)

    add_tune_parser(sub, data_help)
    add_compare_parser(sub)
    add_report_parser(sub)
    add_track_parser(sub)

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

    p = sub.add_parser("baseline", help="train a baseline on exactly a run's train/validation/test rows")
    p.add_argument("--run", required=True, help="the run whose split the baseline uses")
    p.add_argument("--data", action="append", required=True, help="the run's training data; " + data_help)
    p.add_argument("--kind", choices=["constant", "linear", "lightgbm"], default="constant",
                   help="constant: the training rows' mean label; linear: the run's wide part alone; lightgbm: gradient-boosted trees")
    p.add_argument("--out", required=True, help="run directory to write")
    add_mlflow_options(p)
    p.set_defaults(func=cmd_baseline)

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
