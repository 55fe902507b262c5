"""Adult: how long SHAP takes for 200 validation rows, and whether it stays additive.

Trains the suggested Adult spec (2 epochs; the explainer's cost depends on the model's size,
not on how long it trained), then explains 200 validation rows against 100 training rows with
``explain.explain`` (PermutationExplainer, 10 permutations per row) -- twice: the first call in
a process also pays numba's one-off compilation of SHAP's masking code, a long-running studio
server pays it once.  Also times one what-if row.

Target: 200 rows within 30 s on this machine.

Run: ``.venv/bin/python bench/shap_speed.py``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _contention import Contention

from studio_core import pipeline
from studio_core.explain import encode_background, explain, sample_relation
from studio_core.runs import load_run
from studio_core.spec import DataSpec
from studio_core.split import make_split
from studio_core.suggest import suggest
from studio_core.whatif import explain_row
from studio_core.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
ROWS, BACKGROUND, TARGET_S = 200, 100, 30.0


def main() -> None:
    torch.set_num_threads(2)
    contention = Contention()
    ws = Workspace()
    table = ws.load(str(ROOT / "sample_data" / "adult.csv")).table
    spec = suggest(ws, DataSpec(table=table, label="income")).spec
    spec.train.epochs = 2
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.train(spec, ws, Path(tmp) / "run")
        run = load_run(Path(tmp) / "run")
    split = make_split(ws.fork(), run.spec.data)
    rows, bg = sample_relation(split.val, ROWS, 0), sample_relation(split.train, BACKGROUND, 1)
    print(f"Adult run: {len(run.preprocessor.input_columns())} feature columns, {len(spec.features.crosses)} crosses, "
          f"hidden units {spec.model.hidden_units}; {ROWS} rows x {BACKGROUND} background rows, torch threads {torch.get_num_threads()}")
    times = []
    for label in ("first call in the process (includes numba compile)", "second call (a warm server)"):
        t0 = time.perf_counter()
        e = explain(run, rows, bg)
        times.append(time.perf_counter() - t0)
        err = float(np.abs(e.base_value + e.values.sum(axis=1) - e.outputs).max())
        print(f"  {label:52} {times[-1]:6.1f} s   additivity max |base + sum(SHAP) - output| = {err:.1e}")
    codes_b = encode_background(run, bg)
    row = {c: e.data[c].iloc[0] for c in e.columns}
    t0 = time.perf_counter()
    for _ in range(5):
        explain_row(run, row, codes_b)
    print(f"  one what-if row (SHAP + wide/deep split), mean of 5: {(time.perf_counter() - t0) / 5 * 1000:.0f} ms")
    print("top columns by mean |SHAP| (log-odds):", ", ".join(f"{r.feature} {r.mean_abs_shap:.3f}" for r in e.importance().head(6).itertuples()))
    worst = max(times)
    print(f"target {ROWS} rows within {TARGET_S:.0f} s: {'PASS' if worst <= TARGET_S else 'FAIL'} (slowest call {worst:.1f} s)")
    print(contention.report())


if __name__ == "__main__":
    main()
