"""Clicklog: wide-only vs deep-only vs Wide & Deep, from the suggested spec, on one split.

Takes the spec ``suggest`` gives for ``sample_data/clicklog.csv`` (label ``clicked``) and trains
three variants with ``pipeline.train`` in one workspace (so on the same deterministic split):

  * wide-only   -- ``model.deep = False`` (sparse linear part over the categorical one-hots and the
                   suggested crosses);
  * deep-only   -- ``model.wide = False`` (embeddings + MLP; the crosses are still in the spec but
                   only the wide part reads them, so they go unused);
  * Wide & Deep -- both parts, with the suggested crosses.

Prints validation AUC, logloss, epochs run / best epoch, seconds and the crosses each variant used.
Acceptance target: Wide & Deep has a higher validation AUC than both single parts.

Epochs stay at the spec default unless ``--epochs N`` is given (to keep the whole run near
3 minutes on a small machine); the output says which.

Run: ``.venv/bin/python bench/clicklog_ablation.py [--epochs N]``
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings
from pathlib import Path

from _contention import Contention

from studio_core.data.workspace import Workspace
from studio_core.features.suggest import suggest
from studio_core.runs import train as pipeline
from studio_core.spec.schema import DataSpec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sample_data" / "clicklog.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, help="override spec.train.epochs for all three variants")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Sparse invariant checks")

    contention = Contention()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    ws = Workspace()
    table = ws.load(str(DATA)).table
    t0 = time.perf_counter()
    base = suggest(ws, DataSpec(table=table, label="clicked")).spec
    suggest_s = time.perf_counter() - t0
    default_epochs = base.train.epochs
    if args.epochs is not None:
        base.train.epochs = args.epochs
    crosses = [" x ".join(c.columns) for c in base.features.crosses]

    variants = []
    for name, wide, deep in (("wide-only", True, False), ("deep-only", False, True), ("Wide & Deep", True, True)):
        spec = copy.deepcopy(base)
        spec.model.wide, spec.model.deep = wide, deep
        t0 = time.perf_counter()
        out = pipeline.train(spec, ws)
        secs = time.perf_counter() - t0
        used = "; ".join(crosses) if (wide and out.model.use_wide and crosses) else "none"
        variants.append((name, out.metrics, secs, used, [h["val_auc"] for h in out.history]))

    m0 = variants[0][1]
    print(f"Clicklog ({DATA.relative_to(ROOT)}), label clicked, positive class {base.data.positive_class!r}; "
          f"{m0['n_train']} train / {m0['n_val']} validation rows (split seed {base.data.split_seed})")
    if args.epochs is None:
        print(f"epochs: spec default ({default_epochs}); early stopping patience {base.train.early_stopping_patience}")
    else:
        print(f"epochs: OVERRIDDEN to {args.epochs} with --epochs (spec default is {default_epochs}) to keep the run short; "
              f"early stopping patience {base.train.early_stopping_patience}")
    print(f"batch size {base.train.batch_size}, hidden units {base.model.hidden_units}, device {m0['device']}; "
          f"suggest took {suggest_s:.1f} s; load average at start {load:.2f}")
    print()
    print(f"{'variant':13}{'val AUC':>9}{'logloss':>9}{'accuracy':>10}{'epochs run':>12}{'best ep':>9}{'train s':>9}{'total s':>9}"
          f"{'rows/s':>10}  crosses used")
    for name, m, secs, used, _ in variants:
        print(f"{name:13}{m['auc']:9.4f}{m['logloss']:9.4f}{m['accuracy']:10.4f}{m['epochs_run']:12d}{m['best_epoch']:9d}"
              f"{m['train_seconds']:9.1f}{secs:9.1f}{m['train_rows_per_s']:10.0f}  {used}")
    print()
    for name, *_, aucs in variants:
        print(f"{name:13}val AUC per epoch: {' '.join(f'{a:.4f}' for a in aucs)}")
    print()
    wd = variants[2][1]["auc"]
    best_single = max(variants[0][1]["auc"], variants[1][1]["auc"])
    verdict = "PASS" if wd > best_single else "FAIL"
    print(f"target: Wide & Deep AUC beats both single parts: {verdict} "
          f"(W&D {wd:.4f} vs wide-only {variants[0][1]['auc']:.4f} ({wd - variants[0][1]['auc']:+.4f}), "
          f"deep-only {variants[1][1]['auc']:.4f} ({wd - variants[1][1]['auc']:+.4f}))")
    print(f"whole benchmark: {time.perf_counter() - started:.1f} s")
    print(contention.report())


if __name__ == "__main__":
    main()
