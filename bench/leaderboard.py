"""The leaderboard on Adult and the click log: Wide & Deep against its wide-only (linear) and
deep-only ablations, the LightGBM baseline and the constant baseline, on the test rows they
share, with paired 95 % intervals.

For each table: the suggested spec (no edits) trained by ``runs.train.train`` as Wide & Deep,
then its ``compare.ablations`` (the same spec with one part switched off; same split and seed),
then ``compare.leaderboard`` -- what ``wdstudio train --ablations`` prints.  The line after each
table says whether the paired intervals separate Wide & Deep from each ablation (the interval
of the difference excludes 0).

Run: ``.venv/bin/python bench/leaderboard.py [--only adult,clicklog] [--metric auc]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from _contention import Contention  # noqa: E402

from studio_core.compare.ablations import ablation_specs  # noqa: E402
from studio_core.compare.leaderboard import leaderboard  # noqa: E402
from studio_core.data.workspace import Workspace  # noqa: E402
from studio_core.features.suggest import suggest  # noqa: E402
from studio_core.runs.baselines import train_baseline  # noqa: E402
from studio_core.runs.train import train  # noqa: E402
from studio_core.spec.schema import DataSpec  # noqa: E402

TABLES = {"adult": ("adult.csv", "income"), "clicklog": ("clicklog.csv", "clicked")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated: adult, clicklog")
    ap.add_argument("--metric", default=None, help="the metric of the leaderboard (default: the task's headline)")
    a = ap.parse_args()
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    torch.set_num_threads(2)
    contention = Contention()
    only = {s.strip() for s in a.only.split(",") if s.strip()} or set(TABLES)
    with tempfile.TemporaryDirectory() as tmp:
        for name in [t for t in TABLES if t in only]:
            file, label = TABLES[name]
            ws = Workspace()
            ws.load(str(ROOT / "sample_data" / file))
            spec = suggest(ws, DataSpec(table=file.removesuffix(".csv"), label=label)).spec
            dirs, seconds = [], {}
            for kind, variant in {"Wide & Deep": spec, **ablation_specs(spec)}.items():
                started = time.perf_counter()
                out = Path(tmp, f"{name}-{kind.replace(' & ', '-and-').lower()}")
                train(variant, ws, out)
                dirs.append(out)
                seconds[kind] = time.perf_counter() - started
            for kind in ("lightgbm", "constant"):  # gradient-boosted trees, and the training rows' mean label for every row
                started = time.perf_counter()
                out = Path(tmp, f"{name}-{kind}")
                train_baseline(kind, spec, json.loads((dirs[0] / "metrics.json").read_text()), ws, out)
                dirs.append(out)
                seconds[kind] = time.perf_counter() - started
            board = leaderboard(dirs, a.metric, names=[d.name for d in dirs])
            print(f"\n== {name} ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})")
            print("\n".join(board.lines()))
            for row in board.rows[1:]:
                ci = row.diff_ci.get(board.metric)
                separated = ci is not None and (ci[0] > 0 or ci[1] < 0)
                print(f"{row.kind}: Wide & Deep minus it {-row.diff[board.metric]:+.4f}; "
                      f"the paired interval {'separates them' if separated else 'does not separate them'}")
    print(contention.report())


if __name__ == "__main__":
    main()
