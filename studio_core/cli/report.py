"""``wdstudio report``: one self-contained HTML report of a run (see report/build.py)."""

from __future__ import annotations

import argparse


def cmd_report(args: argparse.Namespace) -> int:
    from studio_core.report.build import build_report, write_report

    shap = None
    if args.data:
        from studio_core.cli.data import _warn
        from studio_core.data.load import load_run_data
        from studio_core.report.shap_rows import shap_importance
        from studio_core.runs.folder import run_record

        spec, _metrics = run_record(args.run)
        ws, table, notes = load_run_data(spec.data, args.data)
        _warn(notes)
        shap = shap_importance(args.run, ws, table)
    out = write_report(args.out, build_report(args.run, args.compare or [], args.bundle, shap, args.metric))
    print(f"report written to {out} ({out.stat().st_size / 1024:,.0f} KiB; opens offline in any browser)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report of a run: data, split, leaderboard, curves, weights, SHAP, card")
    p.add_argument("--run", required=True, help="the run directory to report on")
    p.add_argument("--compare", action="append", help="another run on the same test rows for the leaderboard (repeatable)")
    p.add_argument("--metric", help="the leaderboard's metric (default: AUC for binary, accuracy for multiclass, RMSE for regression)")
    p.add_argument("--bundle", help="the run's exported bundle (zip), for its model card and parity figures")
    p.add_argument("--data", action="append", help="the run's training data, to add SHAP importance over its validation rows")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.set_defaults(func=cmd_report)
