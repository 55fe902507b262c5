"""The leaderboard per slice of the test rows: every run's metric per value of one column (per
gender, per device, per age band), with paired intervals, and the slices where the ranking of
the runs differs from the overall one.

An overall winner can lose on a slice that matters (a segment, a market, a device).  Each slice
is scored like the leaderboard -- the same paired bootstrap, so differences within a slice have
their own intervals -- and a slice is flagged when its order of runs differs from the overall
order; the flag says *significant* when some run's paired interval against the reference
excludes zero on the other side from overall.  A numeric column with many values is cut into
quantile bands; a column with many categories keeps its largest ones and pools the rest.
Reads run folders only (no torch); the column's values come from the run's data
(``compare.groups.test_groups``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio_core.common.errors import StudioError
from studio_core.common.metrics import MAXIMISE, METRIC_KEYS, format_metric, headline, metric_label, task_metrics
from studio_core.compare.leaderboard import check_shared, read_scores
from studio_core.runs.bootstrap import RESAMPLES, metric_samples, percentile_interval

MAX_SLICES = 12  # largest categories kept; the rest pooled as "(other)"
BANDS = 5  # quantile bands of a numeric column with many values
MIN_ROWS = 30  # a slice with fewer test rows gets no figures (its interval would say nothing)
OTHER = "(other)"


@dataclass(frozen=True)
class Slice:
    """One value of the column: its rows, each run's metric with its interval and paired
    difference from the reference, and whether its ranking differs from the overall one."""

    value: str
    rows: int
    metric: dict[str, float | None]
    ci: dict[str, list[float] | None]
    diff_ci: dict[str, list[float] | None]  # paired, against the reference (absent for it)
    order: list[str]
    flips: bool
    significant: bool


@dataclass(frozen=True)
class SliceBoard:
    column: str
    metric: str
    reference: str
    overall_order: list[str]
    slices: list[Slice]
    floor: tuple[str, ...] = ()  # constant baselines: in the figures, kept off the chart's scale

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "metric": self.metric, "reference": self.reference, "overall_order": self.overall_order,
                "slices": [asdict(s) for s in self.slices]}

    def lines(self) -> list[str]:
        label = metric_label(self.metric)
        out = [f"per {self.column} ({len(self.slices)} slices): test {label} [95 % interval], paired difference from {self.reference}; "
               f"overall order: {' > '.join(self.overall_order)}"]
        for s in self.slices:
            flag = ("   <- ranking flips (significant)" if s.significant else "   <- ranking differs") if s.flips else ""
            cells = []
            for run, value in s.metric.items():
                ci, d = s.ci.get(run), s.diff_ci.get(run)
                cell = f"{run} {format_metric(self.metric, value)}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
                if run != self.reference and value is not None and s.metric.get(self.reference) is not None:
                    cell += f" diff {value - s.metric[self.reference]:+.4f}" + (f" [{d[0]:+.4f}, {d[1]:+.4f}]" if d else "")
                cells.append(cell)
            out.append(f"  {s.value} ({s.rows:,} rows): " + (" | ".join(cells) if any(v is not None for v in s.metric.values())
                                                          else "too few rows or one outcome only; no figures") + flag)
        return out


def slice_labels(values: np.ndarray, max_slices: int = MAX_SLICES, bands: int = BANDS) -> np.ndarray:
    """The slice of each row: the value itself, a quantile band for a numeric column with more
    than ``max_slices`` values, or ``(other)`` beyond the ``max_slices`` largest categories."""
    values = np.asarray(values, dtype=object)
    distinct = set(values.tolist())
    if len(distinct) <= max_slices:
        return values
    numbers = np.array([_number(v) for v in values.tolist()], dtype=np.float64)
    known = np.isfinite(numbers)
    if known.sum() >= 0.9 * len(values):  # a numeric column: quantile bands
        edges = np.unique(np.quantile(numbers[known], np.linspace(0, 1, bands + 1)))
        out = np.full(len(values), "∅", dtype=object)
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            last = i == len(edges) - 2
            inside = known & (numbers >= lo) & ((numbers <= hi) if last else (numbers < hi))
            out[inside] = f"[{lo:g}, {hi:g}{']' if last else ')'}"
        return out
    counts: dict[Any, int] = {}
    for v in values.tolist():
        counts[v] = counts.get(v, 0) + 1
    keep = {v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:max_slices]}
    return np.array([v if v in keep else OTHER for v in values.tolist()], dtype=object)


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _slice_order(labels: np.ndarray) -> list[Any]:
    """Quantile bands from low to high (missing last); categories largest first, ``(other)`` last."""
    found = set(labels.tolist())
    if found and all(str(v).startswith("[") or v == "∅" for v in found):
        return sorted(found, key=lambda v: (v == "∅", _number(str(v)[1:].split(",")[0]) if v != "∅" else 0.0))
    return sorted(found, key=lambda v: (v == OTHER, -int(np.sum(labels == v)), str(v)))


def _order(metric: str, values: dict[str, float | None]) -> list[str]:
    sign = -1.0 if metric in MAXIMISE else 1.0
    return [name for name, v in sorted(((n, v) for n, v in values.items() if v is not None and np.isfinite(v)), key=lambda nv: sign * nv[1])]


def slice_board(paths: list[str | Path], column: str, at: np.ndarray, values: np.ndarray, metric: str | None = None,
                resamples: int = RESAMPLES, seed: int = 0, names: list[str] | None = None) -> SliceBoard:
    """The runs of ``paths`` (the first the reference) per slice of ``column``, whose value on
    each test row is given as (row numbers ``at``, ``values``) by ``compare.groups.test_groups``."""
    names = list(names) if names is not None else [str(p) for p in paths]
    runs = [read_scores(p, n) for p, n in zip(paths, names)]
    check_shared(runs)
    task, ref = runs[0].task, runs[0]
    metric = metric or headline(task)
    if metric not in METRIC_KEYS[task]:
        raise StudioError(f"--metric {metric!r} is not a {task} metric; use one of {', '.join(METRIC_KEYS[task])}")
    where = dict(zip(np.asarray(at).tolist(), range(len(at))))
    if any(int(r) not in where for r in ref.rows):
        raise StudioError(f"the data's test rows do not hold every row of {ref.name}'s test part; pass the data the runs were trained on")
    labels = slice_labels(np.asarray(values, dtype=object)[[where[int(r)] for r in ref.rows]])
    overall = _order(metric, {r.name: task_metrics(task, ref.y, r.output).get(metric) for r in runs})
    overall_sign = {r.name: np.sign(task_metrics(task, ref.y, r.output)[metric] - task_metrics(task, ref.y, ref.output)[metric]) for r in runs}
    slices = []
    for value in _slice_order(labels):
        mask = labels == value
        y = ref.y[mask]
        point: dict[str, float | None] = {r.name: None for r in runs}
        ci: dict[str, list[float] | None] = {r.name: None for r in runs}
        diff_ci: dict[str, list[float] | None] = {}
        if mask.sum() >= MIN_ROWS and (task != "binary" or 0 < np.sum(y >= 0.5) < len(y)):
            outputs = {r.name: r.output[mask] for r in runs}
            samples = metric_samples(task, y, outputs, resamples, seed)
            for r in runs:
                v = task_metrics(task, y, outputs[r.name]).get(metric)
                point[r.name] = None if v is None or not np.isfinite(v) else float(v)
                ci[r.name] = _ci(samples[r.name][metric])
                if r is not ref:
                    diff_ci[r.name] = _ci(samples[r.name][metric] - samples[ref.name][metric])
        order = _order(metric, point)
        flips = len(order) == len(overall) and order != overall
        significant = any(d is not None and ((d[0] > 0 and overall_sign[n] < 0) or (d[1] < 0 and overall_sign[n] > 0))
                          for n, d in diff_ci.items())
        slices.append(Slice(str(value), int(mask.sum()), point, ci, diff_ci, order, flips, bool(flips and significant)))
    return SliceBoard(column, metric, ref.name, overall, slices, tuple(r.name for r in runs if r.kind == "constant"))


def slice_columns(spec: Any) -> list[str]:
    """The columns a run can be sliced by: its feature columns, categories first (a slice per
    value reads best), then numbers (quantile bands); text columns are left out."""
    f = spec.features
    return [c.name for c in f.categorical] + [c.name for c in f.numeric if c.name not in {x.name for x in f.categorical}]


def slices_for(paths: list[str | Path], ws: Any, column: str, metric: str | None = None, names: list[str] | None = None) -> SliceBoard:
    """``slice_board`` with the column's values read from the first run's data in ``ws`` (its
    split re-created there, and refused when the data no longer gives those test rows)."""
    from studio_core.compare.groups import test_groups

    return slice_board(paths, column, *test_groups(paths[0], ws, column, option="slice column"), metric, names=names)


def _ci(samples: np.ndarray) -> list[float] | None:
    finite = samples[np.isfinite(samples)]
    return [float(x) for x in percentile_interval(finite)] if finite.size >= 0.9 * samples.size else None
