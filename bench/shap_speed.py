"""How long SHAP takes for 200 validation rows, and whether it stays additive.

Default: Adult.  ``--wide``: the generated 80-column table of ``wide_table.py`` (79 feature
columns), where the explainer is timed beside the one it replaced, measured in the same run on
the same rows: ``shap.PermutationExplainer`` over the whole model with 10 permutations per row
(``10 * (2m + 1)`` evaluations), against the exact wide part plus the deep part's first-layer
walk with permutations scaled to the column count.  Also prints the estimate the Explain page
shows before starting, and how close the two explainers' values and importance orders are.

Trains the suggested Adult spec (2 epochs; the explainer's cost depends on the model's size,
not on how long it trained), then explains 200 validation rows against 100 training rows with
``explain.explain`` (PermutationExplainer, 10 permutations per row) -- twice: the first call in
a process also pays numba's one-off compilation of SHAP's masking code, a long-running studio
server pays it once.  Also times one what-if row.

Targets: Adult, 200 rows within 30 s; the wide table, 200 rows within 60 s.

Run: ``.venv/bin/python bench/shap_speed.py [--wide]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _contention import Contention

from studio_core.data.split import make_split
from studio_core.data.workspace import Workspace
from studio_core.explain.shap_values import (
    RowFunction,
    encode_background,
    encode_rows,
    estimate_seconds,
    explain,
    feature_columns,
    sample_relation,
)
from studio_core.explain.whatif import explain_row
from studio_core.features.preprocess import ColumnCodes
from studio_core.features.suggest import suggest
from studio_core.runs import train as pipeline
from studio_core.runs.store import load_run
from studio_core.spec.schema import DataSpec

ROOT = Path(__file__).resolve().parents[1]
ROWS, BACKGROUND, TARGET_S = 200, 100, 30.0


def replaced_explainer(run, rows, bg) -> tuple[np.ndarray, float]:
    """The explainer before this change: shap's permutation explainer over the whole model."""
    import shap

    t0 = time.perf_counter()
    codes_r, _ = encode_rows(run, rows)
    codes_b = encode_background(run, bg)
    columns = feature_columns(run)
    m, n, nb = len(columns), codes_r.n, codes_b.n
    f = RowFunction(run, ColumnCodes.concat([codes_r, codes_b]), columns)
    x = np.repeat(np.arange(n)[:, None], m, axis=1)
    masker = shap.maskers.Independent(np.repeat(n + np.arange(nb)[:, None], m, axis=1), max_samples=nb)
    values = shap.PermutationExplainer(f, masker, seed=0)(x, max_evals=10 * (2 * m + 1), silent=True).values
    return values, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wide", action="store_true", help="the generated 80-column table instead of Adult")
    wide = ap.parse_args().wide
    torch.set_num_threads(2)
    contention = Contention()
    ws = Workspace()
    if wide:
        from wide_table import write

        tmpdir = tempfile.mkdtemp()
        table = ws.load(str(write(Path(tmpdir) / "wide80.csv"))).table
        spec = suggest(ws, DataSpec(table=table, label="label")).spec
    else:
        table = ws.load(str(ROOT / "sample_data" / "adult.csv")).table
        spec = suggest(ws, DataSpec(table=table, label="income")).spec
    spec.train.epochs = 2
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.train(spec, ws, Path(tmp) / "run")
        run = load_run(Path(tmp) / "run")
    split = make_split(ws.fork(), run.spec.data)
    rows, bg = sample_relation(split.val, ROWS, 0), sample_relation(split.train, BACKGROUND, 1)
    print(f"{'wide table' if wide else 'Adult'} run: {len(run.preprocessor.input_columns())} feature columns, {len(spec.features.crosses)} crosses, "
          f"hidden units {spec.model.hidden_units}; {ROWS} rows x {BACKGROUND} background rows, torch threads {torch.get_num_threads()}")
    estimate = estimate_seconds(run, ROWS, BACKGROUND)
    print(f"  estimate shown before starting: {estimate:.1f} s" if estimate is not None else "  no estimate (attention model)")
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
    if wide:
        old, old_s = replaced_explainer(run, rows, bg)
        err = float(np.abs(e.base_value + old.sum(axis=1) - e.outputs).max())
        imp_new, imp_old = np.abs(e.values).mean(0), np.abs(old).mean(0)
        rank = np.corrcoef(np.argsort(np.argsort(-imp_new)), np.argsort(np.argsort(-imp_old)))[0, 1]
        top = set(np.argsort(-imp_new)[:10]) & set(np.argsort(-imp_old)[:10])
        print(f"  replaced explainer (shap permutation, 10 x (2m+1) evals)  {old_s:6.1f} s   additivity {err:.1e}")
        print(f"  speed-up {old_s / times[-1]:.1f}x; per-value max |new - old| {np.abs(e.values - old).max():.4f} "
              f"(largest |value| {np.abs(old).max():.3f}); importance rank correlation {rank:.3f}; top-10 columns shared {len(top)}/10")
    print("top columns by mean |SHAP| (log-odds):", ", ".join(f"{r.feature} {r.mean_abs_shap:.3f}" for r in e.importance().head(6).itertuples()))
    worst = max(times)
    target = 60.0 if wide else TARGET_S
    print(f"target {ROWS} rows within {target:.0f} s: {'PASS' if worst <= target else 'FAIL'} (slowest call {worst:.1f} s)")
    print(contention.report())


if __name__ == "__main__":
    main()
