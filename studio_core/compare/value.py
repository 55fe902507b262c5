"""Value-weighted figures of a click model (the seed's CTR and GMV): with a value column (the
price of the item shown, the order value), not every click is worth the same.

Per run, on the shared test rows:

* **value AUC**: the AUC with each row weighted by its value -- how well the scores rank the
  clicks that are worth most above the non-clicks;
* **CTR of the top 10 %**: the click rate among the 10 % of rows the run scores highest (what a
  campaign that shows only its best slots would see);
* **GMV share of the top 10 %**: the share of all clicked value (value x click) that falls in
  those rows.

Intervals and paired differences use the leaderboard's resamples (counts per row, the same for
every run), so "B captures more GMV than A" comes with its own interval.  Binary labels only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio_core.common.errors import StudioError
from studio_core.common.ranking import weighted_auc
from studio_core.compare.leaderboard import check_shared, read_scores
from studio_core.runs.bootstrap import RESAMPLES, percentile_interval, resample_counts

TOP = 0.10
KEYS = ("value_auc", "ctr_top", "value_share_top")
LABELS = {"value_auc": "value AUC", "ctr_top": "CTR of top 10 %", "value_share_top": "GMV share of top 10 %"}


def value_metrics(weights: np.ndarray, y: np.ndarray, score: np.ndarray, value: np.ndarray, top: float = TOP) -> dict[str, np.ndarray]:
    """The three figures for each row of ``weights`` (how often each test row is drawn)."""
    clicked = (y >= 0.5).astype(np.float64)
    order = np.argsort(-score, kind="stable")  # highest score first; ties by row order, the same for every run
    w = weights[:, order]
    c, v = clicked[order], value[order]
    total = w.sum(axis=1, keepdims=True)
    before = np.cumsum(w, axis=1) - w  # drawn rows ahead of each row
    share = np.clip(top * total - before, 0.0, w)  # how much of each row's weight falls in the top share
    with np.errstate(invalid="ignore", divide="ignore"):
        ctr = (share @ c) / share.sum(axis=1)
        gmv = (share @ (c * v)) / (w @ (c * v))
    return {"value_auc": weighted_auc(weights * value, score, y), "ctr_top": ctr, "value_share_top": gmv}


@dataclass(frozen=True)
class ValueRow:
    run: str
    figures: dict[str, float]
    ci: dict[str, list[float] | None]
    diff_ci: dict[str, list[float] | None]


@dataclass(frozen=True)
class ValueBoard:
    column: str
    reference: str
    rows: list[ValueRow]

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "reference": self.reference, "top_share": TOP, "rows": [asdict(r) for r in self.rows]}

    def lines(self) -> list[str]:
        out = [f"weighted by {self.column} (value x click), 95 % intervals; differences paired against {self.reference}:"]
        ref = self.rows[0].figures
        for r in self.rows:
            cells = []
            for k in KEYS:
                ci, d = r.ci.get(k), r.diff_ci.get(k)
                cell = f"{LABELS[k]} {r.figures[k]:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
                if r.run != self.reference:
                    cell += f" ({r.figures[k] - ref[k]:+.4f}" + (f" [{d[0]:+.4f}, {d[1]:+.4f}])" if d else ")")
                cells.append(cell)
            out.append(f"  {r.run}: " + " | ".join(cells))
        return out


def value_numbers(values: np.ndarray, column: str) -> np.ndarray:
    """The column's values as non-negative amounts (missing counts as 0), or a clear refusal."""
    out = np.zeros(len(values))
    for i, v in enumerate(values.tolist()):
        if v is None or v == "∅":
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise StudioError(f"--value {column!r} holds {v!r}, not an amount; pass a numeric column (a price, an order value)") from None
    if not np.all(np.isfinite(out)) or (out < 0).any():
        raise StudioError(f"--value {column!r} holds negative or infinite amounts; pass a column of amounts >= 0")
    return out


def value_board(paths: list[str | Path], column: str, at: np.ndarray, values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                names: list[str] | None = None) -> ValueBoard:
    """The runs of ``paths`` (the first the reference) weighted by ``column``, whose value on each
    test row is given as (row numbers ``at``, ``values``) by ``compare.groups.test_groups``."""
    names = list(names) if names is not None else [str(p) for p in paths]
    runs = [read_scores(p, n) for p, n in zip(paths, names)]
    check_shared(runs)
    ref = runs[0]
    if ref.task != "binary":
        raise StudioError(f"value-weighted figures rank one click score per row; these runs are {ref.task}: compare without --value")
    where = dict(zip(np.asarray(at).tolist(), range(len(at))))
    if any(int(r) not in where for r in ref.rows):
        raise StudioError(f"the data's test rows do not hold every row of {ref.name}'s test part; pass the data the runs were trained on")
    value = value_numbers(np.asarray(values, dtype=object)[[where[int(r)] for r in ref.rows]], column)
    point, samples = _samples(ref.y, {r.name: r.output for r in runs}, value, resamples, seed)
    rows = [ValueRow(r.name, point[r.name], {k: _ci(samples[r.name][k]) for k in KEYS},
                     {} if r is ref else {k: _ci(samples[r.name][k] - samples[ref.name][k]) for k in KEYS}) for r in runs]
    return ValueBoard(column, ref.name, rows)


def _samples(y: np.ndarray, outputs: Mapping[str, np.ndarray], value: np.ndarray, resamples: int,
             seed: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    ones = np.ones((1, len(y)))
    point = {n: {k: float(v[0]) for k, v in value_metrics(ones, y, out, value).items()} for n, out in outputs.items()}
    parts: dict[str, dict[str, list[np.ndarray]]] = {n: {k: [] for k in KEYS} for n in outputs}
    for counts in resample_counts(len(y), resamples, seed):  # the same counts for every run: paired
        for n, out in outputs.items():
            for k, v in value_metrics(counts, y, out, value).items():
                parts[n][k].append(v)
    return point, {n: {k: np.concatenate(v) for k, v in d.items()} for n, d in parts.items()}


def _ci(samples: np.ndarray) -> list[float] | None:
    got = percentile_interval(samples)
    return list(got) if got is not None else None
