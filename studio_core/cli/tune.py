"""``wdstudio tune``: search a spec's knobs within a budget of trials or minutes (Optuna TPE,
validation rows only), then write the best spec and the trials table.  The test rows are not
scored by any trial; train the best spec once with ``wdstudio train --spec`` for test figures."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from studio_core.common.errors import Cancelled, StudioError


def add_parser(sub: argparse._SubParsersAction, data_help: str) -> None:
    p = sub.add_parser("tune", help="tune a spec within a budget (validation rows only) and write the best spec")
    p.add_argument("--data", action="append", help=data_help)
    p.add_argument("--sql", help="SELECT producing the training rows (tables are named after the files)")
    p.add_argument("--table", help="tune on this table (default: the first --data)")
    p.add_argument("--label", help="the column to predict")
    p.add_argument("--spec", help="spec JSON to start from (default: the suggested spec)")
    p.add_argument("--trials", type=int, help="number of trials (trial 0 is the spec as given)")
    p.add_argument("--minutes", type=float, help="wall-clock budget in minutes (with --trials: whichever ends first)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--epochs", type=int, help="override train.epochs (the most each trial may train)")
    p.add_argument("--out", required=True, help="write the best spec JSON here")
    p.add_argument("--trials-out", help="write the trials table as CSV here (default: next to --out, .trials.csv)")
    p.add_argument("--quiet", action="store_true", help="no per-trial lines")
    p.set_defaults(func=cmd_tune, device=None, preprocessing=None)


def cmd_tune(args: argparse.Namespace) -> int:
    from studio_core.cli.train import _train_spec
    from studio_core.runs.tune import check_budget, tune

    check_budget(args.trials, args.minutes)
    out = Path(args.out)
    if out.is_dir():
        raise StudioError(f"--out {out} is a folder; name the spec file to write, e.g. {out / 'best_spec.json'}")
    trials_out = Path(args.trials_out) if args.trials_out else out.with_suffix(".trials.csv")
    spec, ws, _ = _train_spec(args)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set()) if threading.current_thread() is threading.main_thread() else None

    def line(trial, planned: int) -> None:
        if not args.quiet:
            shown = f"{trial.value:.4f}" if trial.value is not None else f"failed ({trial.message})"
            print(f"trial {trial.number + 1}{f'/{planned}' if planned else ''}: validation {shown} in {trial.seconds:.1f} s", file=sys.stderr, flush=True)

    try:
        result = tune(spec, ws, args.trials, args.minutes, args.seed, line, stop)
    except Cancelled:
        raise StudioError("tuning interrupted before a trial finished; nothing was written") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    out.write_text(result.best_spec.to_json(), encoding="utf-8")
    result.table().to_csv(trials_out, index=False)
    given = f"{result.default_value:.4f}" if result.default_value is not None else "failed"
    print(f"best validation {result.monitor} {result.best_value:.4f} (the spec as given: {given}) after {len(result.trials)} trials")
    print(f"best spec: {out}  trials: {trials_out}")
    print(f"test figures: wdstudio train --spec {out} --data ... --out RUN_DIR")
    return 0
