"""Is it better than the other one?  A leaderboard of runs on the test rows they share.

Each run's test metrics come with 95 % bootstrap intervals, and each run's difference from a
reference run comes with a **paired** interval: both runs are scored on the same 1,000
resamples of the shared test rows, and the interval is taken over the per-resample
differences, so it is about the difference itself (two runs' separate intervals can overlap
while one run is better on nearly every resample).  ``p_better`` is the share of resamples on
which the run beats the reference on the chosen metric.

Only runs scored on the same rows are compared: the same task, label and data source, the
same test row numbers and the same labels on them, else a ``StudioError`` says which run
differs and how.  This reads ``spec.json``, ``metrics.json`` and ``test_predictions.parquet``
only: no model is loaded and torch is never imported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from studio_core.common.errors import StudioError
from studio_core.common.metrics import MAXIMISE, METRIC_KEYS, format_metric, headline, metric_label, task_metrics
from studio_core.compare.groups import group_samples
from studio_core.runs.bootstrap import RESAMPLES, metric_samples, percentile_interval
from studio_core.runs.folder import run_record
from studio_core.spec.schema import Spec

TEST_PREDICTIONS = "test_predictions.parquet"


@dataclass(frozen=True)
class RunScores:
    """A run's stored test rows: row numbers (ascending), labels and outputs (logits for a
    binary task, per-class logits (n, K) for multiclass, predictions on the label's scale for
    regression), and what identifies them."""

    name: str
    kind: str
    task: str
    label: str
    source: str
    rows: np.ndarray
    y: np.ndarray
    output: np.ndarray
    recipe: str = ""  # the spec without its training seed: runs alike but for the seed share it


def recipe_of(spec: Spec) -> str:
    """What a run is apart from its training seed (and where its files came from)."""
    d = spec.to_dict()
    d["train"].pop("seed", None)
    d["data"].pop("sources", None)
    return json.dumps(d, sort_keys=True, default=str)


def kind_of(spec: Spec, metrics: dict[str, Any]) -> str:
    """What a run is, in words: its recorded kind, or what its spec trains."""
    if metrics.get("kind"):
        return str(metrics["kind"])
    m = spec.model
    return "Wide & Deep" if m.wide and m.deep else ("wide-only" if m.wide else ("deep-only" if m.deep else "constant"))


def read_scores(path: str | Path, name: str | None = None) -> RunScores:
    """The stored test rows of the run at ``path`` (refused, saying why, when it has none)."""
    path = Path(path)
    try:
        spec, metrics = run_record(path)
        task = metrics["task"]
        if task not in METRIC_KEYS:
            raise ValueError(f"unknown task {task!r}")
        table = pq.read_table(path / TEST_PREDICTIONS) if (path / TEST_PREDICTIONS).is_file() else None
        if table is None:
            raise StudioError(f"{path} has no test predictions (no test rows, or data.test_fraction 0); train it with test rows to compare it")
        if task == "multiclass":  # each class's logit, side by side
            k = sum(1 for c in table.column_names if c.startswith("logit_"))
            out = np.stack([table.column(f"logit_{i}").to_numpy() for i in range(k)], axis=1).astype(np.float64)
        else:
            out = table.column("logit" if task == "binary" else "prediction").to_numpy().astype(np.float64)
        rows, y = table.column("row").to_numpy().astype(np.int64), table.column("label").to_numpy().astype(np.float64)
    except StudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: one message naming the run
        raise StudioError(f"{path}: the run directory is damaged ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                          "train it again") from None
    order = np.argsort(rows, kind="stable")
    source = spec.data.sql.strip() if spec.data.sql.strip() else spec.data.table
    kind = kind_of(spec, metrics)
    return RunScores(name or str(path), kind, task, spec.data.label, source, rows[order], y[order], out[order],
                     f"{kind}: {recipe_of(spec)}")  # a baseline on a run's spec is not a seed of that run


def check_shared(runs: list[RunScores]) -> None:
    """Refuse runs that were not scored on the same test rows as the first one."""
    ref = runs[0]
    for r in runs[1:]:
        why = []
        if (r.task, r.label) != (ref.task, ref.label):
            why.append(f"it predicts {r.label!r} ({r.task}), the first run {ref.label!r} ({ref.task})")
        elif r.source != ref.source:
            why.append("it was trained on another table or query")
        elif len(r.rows) != len(ref.rows) or not np.array_equal(r.rows, ref.rows):
            differ = len(np.setxor1d(r.rows, ref.rows))
            why.append(f"its test part holds {len(r.rows):,} rows, the first run's {len(ref.rows):,}, and {differ:,} row numbers are in one only")
        elif not np.allclose(r.y, ref.y, equal_nan=True):
            why.append("the labels of the same test rows differ (the table changed between the runs)")
        if why:
            raise StudioError(f"{r.name} cannot be compared with {ref.name}: {why[0]}; compare runs trained on the same data "
                              "with the same data.split, split seed and shares")


@dataclass(frozen=True)
class Row:
    run: str
    kind: str
    test: dict[str, float]
    test_ci: dict[str, list[float] | None]
    diff: dict[str, float]  # this run minus the reference, per metric
    diff_ci: dict[str, list[float] | None]  # paired 95 % intervals of those differences
    p_better: float | None  # share of paired resamples on which this run beats the reference (None: the reference)
    groups: dict[str, float] = field(default_factory=dict)  # GAUC, NDCG@k, recall@k over the group column (when given)
    groups_ci: dict[str, list[float] | None] = field(default_factory=dict)  # resampling groups
    groups_diff_ci: dict[str, list[float] | None] = field(default_factory=dict)  # paired, against the reference


@dataclass(frozen=True)
class SeedGroup:
    """Runs of one spec that differ only in their training seed: the spread a seed alone makes."""

    kind: str
    runs: list[str]
    mean: float
    std: float  # population standard deviation over the runs' test figures


@dataclass(frozen=True)
class Leaderboard:
    metric: str
    reference: str
    task: str
    n_rows: int
    resamples: int
    rows: list[Row]
    seed_groups: list[SeedGroup] = field(default_factory=list)
    group_column: str = ""  # the column GAUC / NDCG@k / recall@k group the test rows by
    k: int = 10
    n_groups: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "reference": self.reference, "task": self.task, "n_test_rows": self.n_rows,
                "resamples": self.resamples, "seed_groups": [asdict(g) for g in self.seed_groups],
                "rows": [{k: v for k, v in asdict(r).items() if self.group_column or not k.startswith("groups")} for r in self.rows],
                **({"group_column": self.group_column, "k": self.k, "n_groups": self.n_groups} if self.group_column else {})}

    def lines(self) -> list[str]:
        """The leaderboard as aligned text lines: a heading, then one line per run."""
        m = self.metric
        name_w = max(len("run"), *(len(r.run) for r in self.rows))
        kind_w = max(len("kind"), *(len(r.kind) for r in self.rows))
        out = [f"test {metric_label(m)} on {self.n_rows:,} shared test rows; 95 % intervals from {self.resamples:,} paired bootstrap "
               f"resamples; differences against {self.reference}",
               f"{'run':<{name_w}}  {'kind':<{kind_w}}  {metric_label(m) + ' [95 % interval]':<28}  {'difference [paired 95 % interval]':<36}  P(better)"]
        for r in self.rows:
            ci = r.test_ci.get(m)
            value = f"{format_metric(m, r.test.get(m))}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
            if r.run == self.reference:
                diff, p = "(reference)", ""
            else:
                dci = r.diff_ci.get(m)
                diff = f"{r.diff[m]:+.4f}" + (f" [{dci[0]:+.4f}, {dci[1]:+.4f}]" if dci else "")
                p = f"{r.p_better:.3f}" if r.p_better is not None else "undefined"
            out.append(f"{r.run:<{name_w}}  {r.kind:<{kind_w}}  {value:<28}  {diff:<36}  {p}")
        if self.group_column:
            out.append(f"per {self.group_column} ({self.n_groups:,} groups; intervals resample whole groups), k = {self.k}:")
            for r in self.rows:
                cells = []
                for key, label in (("gauc", "GAUC"), ("ndcg", f"NDCG@{self.k}"), ("recall", f"recall@{self.k}")):
                    ci, dci = r.groups_ci.get(key), r.groups_diff_ci.get(key)
                    cells.append(f"{label} {r.groups.get(key, float('nan')):.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
                                 + (f" (diff [{dci[0]:+.4f}, {dci[1]:+.4f}])" if dci else ""))
                out.append(f"{r.run:<{name_w}}  " + "; ".join(cells))
        for g in self.seed_groups:
            out.append(f"{g.kind} over {len(g.runs)} training seeds ({', '.join(g.runs)}): {metric_label(m)} {g.mean:.4f} ± {g.std:.4f} "
                       "(mean ± spread over seeds, beside each run's interval over test rows)")
        return out


def _interval(samples: np.ndarray) -> list[float] | None:
    iv = percentile_interval(samples)
    return list(iv) if iv is not None else None


def leaderboard(paths: list[str | Path], metric: str | None = None, resamples: int = RESAMPLES, seed: int = 0,
                names: list[str] | None = None, groups: tuple[str, np.ndarray, np.ndarray] | None = None, k: int = 10) -> Leaderboard:
    """Every run of ``paths`` on their shared test rows, the first one the reference; each
    named by its path, or by ``names``.  ``groups`` = (column, row numbers, values) adds GAUC,
    NDCG@k and recall@k per value of the column (``compare.groups.test_groups`` reads them)."""
    if not paths:
        raise StudioError("no runs to compare; pass one or more run directories")
    names = list(names) if names is not None else [str(p) for p in paths]
    if len(set(names)) != len(names):
        raise StudioError("the same run is named twice; pass each run directory once")
    runs = [read_scores(p, n) for p, n in zip(paths, names)]
    check_shared(runs)
    task = runs[0].task
    metric = metric or headline(task)
    if metric not in METRIC_KEYS[task]:
        raise StudioError(f"--metric {metric!r} is not a {task} metric; use one of {', '.join(METRIC_KEYS[task])}")
    y = runs[0].y
    samples = metric_samples(task, y, {r.name: r.output for r in runs}, resamples, seed)
    ref = runs[0]
    ref_test = task_metrics(task, y, ref.output)
    rows = []
    for r in runs:
        test = task_metrics(task, y, r.output)
        mine, theirs = samples[r.name], samples[ref.name]
        diff_samples = {k: mine[k] - theirs[k] for k in mine}
        p_better = None
        if r is not ref:
            d = diff_samples[metric][np.isfinite(diff_samples[metric])]
            p_better = float(np.mean(d > 0 if metric in MAXIMISE else d < 0)) if d.size else None
        rows.append(Row(r.name, r.kind, test, {k: _interval(v) for k, v in mine.items()},
                        {k: test[k] - ref_test[k] for k in test}, {k: _interval(v) for k, v in diff_samples.items()} if r is not ref else {},
                        p_better))
    by_recipe: dict[str, list[RunScores]] = {}
    for r in runs:
        by_recipe.setdefault(r.recipe, []).append(r)
    group_column, n_groups = "", 0
    if groups is not None:
        if task == "multiclass":
            raise StudioError("group metrics (GAUC, NDCG@k, recall@k) rank one score per row; a multiclass run has one per class: compare without --group")
        group_column, at, values = groups
        where = dict(zip(at.tolist(), range(len(at))))
        if any(int(r) not in where for r in ref.rows):
            raise StudioError(f"the data's test rows do not hold every row of {ref.name}'s test part; pass the data the runs were trained on")
        g = values[[where[int(r)] for r in ref.rows]]
        point, gs = group_samples(y, {r.name: r.output for r in runs}, g, k, resamples, seed)
        n_groups = len(set(g.tolist()))
        rows = [replace(row, groups=point[row.run], groups_ci={m: _interval(v) for m, v in gs[row.run].items()},
                        groups_diff_ci={} if row.run == ref.name else {m: _interval(v - gs[ref.name][m]) for m, v in gs[row.run].items()})
                for row in rows]
    by_name = {row.run: row for row in rows}
    seed_groups = [SeedGroup(g[0].kind, [r.name for r in g], float(np.mean(v := [by_name[r.name].test[metric] for r in g])), float(np.std(v)))
                   for g in by_recipe.values() if len(g) > 1]
    return Leaderboard(metric, ref.name, task, len(y), resamples, rows, seed_groups, group_column, k, n_groups)
