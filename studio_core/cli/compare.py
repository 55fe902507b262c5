"""``wdstudio compare``: the leaderboard of runs on their shared test rows (see compare/leaderboard.py)."""

from __future__ import annotations

import argparse
import json

from studio_core.compare.leaderboard import leaderboard


def cmd_compare(args: argparse.Namespace) -> int:
    groups, sliced, valued = None, None, None
    if args.group or args.slice or args.value:
        from studio_core.cli.data import _warn
        from studio_core.common.errors import StudioError
        from studio_core.compare.groups import test_columns
        from studio_core.data.load import load_run_data
        from studio_core.runs.folder import run_record

        if not args.data:
            which = "--group" if args.group else "--slice" if args.slice else "--value"
            raise StudioError(f"{which} needs the runs' data to read the column from; add --data FILE")
        if args.k < 1:
            raise StudioError(f"--k {args.k} is not a number of top rows; pass 1 or more")
        spec, _metrics = run_record(args.runs[0])
        ws, table, notes = load_run_data(spec.data, args.data)
        _warn(notes)
        asked = {o: c for o, c in (("--group", args.group), ("--slice", args.slice), ("--value", args.value)) if c}
        at, values = test_columns(args.runs[0], ws, asked, table)  # one re-creation of the split for every column asked
        if args.group:
            groups = (args.group, at, values[args.group])
        if args.slice:
            from studio_core.compare.slices import slice_board

            sliced = slice_board(args.runs, args.slice, at, values[args.slice], args.metric, seed=args.seed)
        if args.value:
            from studio_core.compare.value import value_board

            valued = value_board(args.runs, args.value, at, values[args.value], seed=args.seed)
    board = leaderboard(args.runs, args.metric, seed=args.seed, groups=groups, k=args.k)
    if args.json:
        print(json.dumps({**board.to_dict(), **({"slices": sliced.to_dict()} if sliced else {}), **({"value": valued.to_dict()} if valued else {})},
                         indent=2, ensure_ascii=False))
    else:
        print("\n".join(board.lines() + (sliced.lines() if sliced else []) + (valued.lines() if valued else [])))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="leaderboard of runs on their shared test rows, with paired intervals")
    p.add_argument("runs", nargs="+", help="run directories; the first is the reference the others are compared with")
    p.add_argument("--metric", help="the metric to compare on (default: AUC for binary, RMSE for regression)")
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    p.add_argument("--group", help="also GAUC, NDCG@k and recall@k per value of this column (a user id, a session); needs --data")
    p.add_argument("--slice", help="also every run's metric per value of this column (quantile bands for a number), with paired "
                   "intervals, flagging slices where the ranking of runs flips; needs --data")
    p.add_argument("--value", help="also value-weighted figures of a click model: value AUC, CTR and GMV share of the top 10 %% "
                   "of rows, with paired intervals (a price or order-value column); needs --data")
    p.add_argument("--data", action="append", help="the runs' training data, for --group, --slice and --value (CSV or Parquet, optionally NAME=PATH)")
    p.add_argument("--k", type=int, default=10, help="the top rows per group for NDCG@k and recall@k (default 10)")
    p.set_defaults(func=cmd_compare)
