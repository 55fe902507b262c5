"""``wdstudio compare``: the leaderboard of runs on their shared test rows (see compare/leaderboard.py)."""

from __future__ import annotations

import argparse
import json

from studio_core.compare.leaderboard import leaderboard


def cmd_compare(args: argparse.Namespace) -> int:
    board = leaderboard(args.runs, args.metric, seed=args.seed)
    if args.json:
        print(json.dumps(board.to_dict(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(board.lines()))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="leaderboard of runs on their shared test rows, with paired intervals")
    p.add_argument("runs", nargs="+", help="run directories; the first is the reference the others are compared with")
    p.add_argument("--metric", help="the metric to compare on (default: AUC for binary, RMSE for regression)")
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    p.set_defaults(func=cmd_compare)
