"""A suggested spec for a table and a label, with the reason for every choice.

* Task: binary when the label has two values (positive class: 1/true/yes, else the rarer value),
  regression for a numeric label with more values.
* Column roles: numeric, categorical, or ignored with the reason (the label, constant, all
  missing, unique id, leakage suspected: the column alone scores validation AUC/R² >= 0.99).
* Embedding sizes: ``embedding_dim_for`` = round(1.6 * n_ids^0.56), clipped to [2, 64].
* Wide crosses ranked by their *held-out interaction gain*: the validation log-loss (binary; or
  squared error, regression) saved per row by a smoothed target encoding of the combination,
  fitted on the training split, over the additive combination of its columns' own encodings
  (``holdout_gain``).  Measured out of sample, so high-cardinality crosses that merely memorise
  the training rows score about zero.  Each candidate carries its cardinality and the share of
  validation rows whose combination was unseen in training.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score

from .encoders import embedding_dim_for
from .errors import StudioError
from .spec import CategoricalFeature, CrossFeature, DataSpec, FeatureSpec, NumericFeature, Spec
from .split import Split, make_split, source_sql
from .sqlutil import is_boolean_type, is_numeric_type, qi, ql
from .workspace import Workspace

MAX_VOCAB = 10_000  # more distinct values than this -> hashing
SMALL_INT_DISTINCT = 32  # integer columns with at most this many values are categorical
ID_SHARE = 0.9  # text columns with distinct/non-null above this are id-like
LEAK_SCORE = 0.99
SMOOTHING = 20.0  # pseudo-rows pulling a value's mean towards its baseline
MIN_CROSS_GAIN = 1e-4  # nats per validation row
CROSS_POOL = 16  # crosses are searched among the most informative features
TRIPLE_POOL = 7
NUMERIC_BUCKETS = 32  # numerics are standardised *and* their bucket embedded (tails, thresholds)


@dataclass(frozen=True)
class ColumnRole:
    name: str
    role: str  # "label" | "numeric" | "categorical" | "ignored"
    reason: str
    distinct: int
    null_share: float
    gain: float = 0.0  # held-out loss reduction per row of the column alone


@dataclass(frozen=True)
class CrossCandidate:
    columns: tuple[str, ...]
    score: float  # held-out loss reduction per row beyond the columns alone (see holdout_gain)
    cardinality: int
    unseen_share: float


@dataclass
class Suggestion:
    spec: Spec
    task_reason: str
    roles: list[ColumnRole] = field(default_factory=list)
    crosses: list[CrossCandidate] = field(default_factory=list)


def _cells(con, relation: str, exprs: list[str]) -> pd.DataFrame:
    """Aggregated (keys..., n, sum y, sum y^2) per combination of values of ``exprs``."""
    keys = ", ".join(f"CAST({e} AS VARCHAR) AS k{i}" for i, e in enumerate(exprs))
    df = con.sql(f"SELECT {keys}, count(*)::DOUBLE AS n, sum(__y)::DOUBLE AS s, sum(__y * __y)::DOUBLE AS s2 FROM {relation} GROUP BY ALL").df()
    for i in range(len(exprs)):
        df[f"k{i}"] = df[f"k{i}"].astype(object).where(df[f"k{i}"].notna(), "\x00")
    return df


def _loss(task: str, p: np.ndarray, n: np.ndarray, s: np.ndarray, s2: np.ndarray) -> float:
    """Total log-loss (binary) or squared error (regression) of predicting p in each cell."""
    if task == "binary":
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return float(-(s * np.log(p) + (n - s) * np.log(1 - p)).sum())
    return float((s2 - 2 * p * s + n * p * p).sum())


def _single(tr: pd.DataFrame, va: pd.DataFrame, key: str, p0: float, m: float) -> np.ndarray:
    """Smoothed mean of the label for each validation cell's value of ``key`` alone."""
    g = tr.groupby(key)[["n", "s"]].sum()
    return va[key].map((g.s + m * p0) / (g.n + m)).fillna(p0).to_numpy(dtype=float)


def holdout_gain(con, train: str, val: str, exprs: list[str], task: str, cross: bool = False, m: float = SMOOTHING) -> float:
    """Validation loss reduction per row from target-encoding ``exprs`` on the training rows.

    Single column: baseline is the global mean.  Cross (``cross=True``): the baseline is the
    additive combination of the columns' own encodings (on the logit scale for binary), and
    each cell's mean is shrunk towards it with ``m`` pseudo-rows -- so a cross scores only for
    what it predicts *beyond its parts*, out of sample; rare or unseen cells score nothing.
    """
    tr, va = _cells(con, train, exprs), _cells(con, val, exprs)
    if tr.empty or va.empty:
        return 0.0
    keys = [f"k{i}" for i in range(len(exprs))]
    p0 = tr.s.sum() / tr.n.sum()
    link, inv = ((lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))), (lambda z: 1 / (1 + np.exp(-z)))) \
        if task == "binary" else ((lambda p: p), (lambda z: z))

    def parts(frame: pd.DataFrame) -> np.ndarray:
        z = np.full(len(frame), link(p0))
        for k in keys:
            g = tr.groupby(k)[["n", "s"]].sum()
            enc = link((g.s + m * p0) / (g.n + m)) - link(p0)
            z = z + frame[k].map(enc).fillna(0.0).to_numpy(dtype=float)
        return inv(z)

    n, s, s2 = va.n.to_numpy(), va.s.to_numpy(), va.s2.to_numpy()
    if cross:
        base = parts(va)
        tr = tr.assign(p=(tr.s + m * parts(tr)) / (tr.n + m))
        merged = va.merge(tr[keys + ["p"]], on=keys, how="left")
        pred = merged.p.fillna(pd.Series(base, index=merged.index)).to_numpy(dtype=float)
        # redundant columns (education / education_num) make the additive baseline double-count:
        # the baseline is the best of the additive model and each column alone
        base_loss = min([_loss(task, base, n, s, s2)] + [_loss(task, _single(tr, va, k, p0, m), n, s, s2) for k in keys])
    else:
        pred = _single(tr, va, keys[0], p0, m)
        base_loss = _loss(task, np.full(len(va), p0), n, s, s2)
    gain = (base_loss - _loss(task, pred, n, s, s2)) / n.sum()
    if task == "regression":
        var = s2.sum() / n.sum() - (s.sum() / n.sum()) ** 2
        gain = gain / var if var > 0 else 0.0
    return float(gain)


def _label_info(ws: Workspace, src: str, label: str, label_type: str) -> tuple[list[str], int]:
    from .preprocess import text_expr

    rows = ws.con.sql(f"SELECT {text_expr(label, label_type)} v, count(*) n FROM {src} WHERE {qi(label)} IS NOT NULL GROUP BY 1 ORDER BY 2, 1").fetchall()
    return [r[0] for r in rows], sum(r[1] for r in rows)


def choose_task(values: list[str], numeric: bool, label: str) -> tuple[str, str, str]:
    """(task, positive class, reason) from the label's distinct values (rarest first)."""
    if len(values) < 2:
        raise StudioError(f"label {label!r} has {len(values)} distinct value(s); a model needs at least two: pick another label or load more rows")
    if len(values) == 2:
        low = {v.lower(): v for v in values}
        for pos in ("1", "true", "yes", "y", "positive", "pos"):
            if pos in low:
                return "binary", low[pos], f"two values; positive class {low[pos]!r}"
        return "binary", values[0], f"two values; positive class {values[0]!r} (the rarer one)"
    if numeric:
        return "regression", "", f"numeric with {len(values)} distinct values"
    raise StudioError(
        f"label {label!r} is text with {len(values)} values; binary classification needs exactly two "
        "(derive a two-valued column with SQL) and regression needs numbers"
    )


def _bucket_expr(split: Split, col: str) -> str:
    """SQL giving the same bucket id as the feature's ``QuantileBucketizer`` will."""
    from .encoders import QuantileBucketizer
    from .preprocess import number_expr

    x = number_expr(col)
    bounds = QuantileBucketizer(NUMERIC_BUCKETS).fit(split.train, x).boundaries_
    cases = " ".join(f"WHEN {x} <= {b!r} THEN {i + 1}" for i, b in enumerate(bounds))
    return f"CASE WHEN {x} IS NULL THEN 0 {cases} ELSE {len(bounds) + 1} END"


def suggest(ws: Workspace, data: DataSpec, max_crosses: int = 3, triples: bool = False) -> Suggestion:
    """Suggest task, roles, encodings, embedding sizes and ranked crosses for ``data``."""
    from .preprocess import number_expr, text_expr

    con = ws.con
    src = source_sql(data)
    types = dict(zip(con.sql(f"SELECT * FROM {src} LIMIT 0").columns, map(str, con.sql(f"SELECT * FROM {src} LIMIT 0").types)))
    if data.label not in types:
        raise StudioError(f"label column {data.label!r} does not exist; choose one of: {', '.join(list(types)[:20])}")
    label_numeric = is_numeric_type(types[data.label])
    values, _ = _label_info(ws, src, data.label, types[data.label])
    task, positive, task_reason = choose_task(values, label_numeric, data.label)
    if data.task == "binary" and task == "binary" and data.positive_class in values:
        positive = data.positive_class
    data = DataSpec(**{**data.__dict__, "task": task, "positive_class": positive})
    split = make_split(ws, data)
    train = split.train.relation
    y_expr = (f"CASE WHEN {text_expr(data.label, types[data.label])} = {ql(positive)} THEN 1.0 ELSE 0.0 END" if task == "binary"
              else number_expr(data.label))
    labelled = f"(SELECT *, {y_expr} AS __y FROM {train} WHERE ({y_expr}) IS NOT NULL)"
    labelled_val = f"(SELECT *, {y_expr} AS __y FROM {split.val.relation} WHERE ({y_expr}) IS NOT NULL)"

    candidates = [c for c in types if c != data.label and c != data.split_column]
    stats = _column_stats(con, train, candidates, types)
    roles: list[ColumnRole] = [ColumnRole(data.label, "label", "the label", len(values), 0.0)]
    numeric: list[NumericFeature] = []
    categorical: list[CategoricalFeature] = []
    comp_expr: dict[str, str] = {}
    n_train = max(split.n_train, 1)
    for col in candidates:
        t = types[col]
        nonnull, distinct, integral = stats[col]
        null_share = 1 - nonnull / n_train
        reason, role = "", ""
        if nonnull == 0:
            role, reason = "ignored", "all values missing"
        elif distinct <= 1:
            role, reason = "ignored", "constant"
        elif not (is_numeric_type(t) or is_boolean_type(t) or t == "VARCHAR"):
            role, reason = "ignored", f"type {t} is not supported; derive numbers or text from it with SQL"
        elif is_numeric_type(t) and not (integral and distinct <= SMALL_INT_DISTINCT):
            if integral and distinct == nonnull and nonnull >= 50:
                role, reason = "ignored", "unique id (every value different)"
            else:
                role, reason = "numeric", f"numeric with {distinct} distinct values"
        elif not is_numeric_type(t) and nonnull >= 50 and distinct / nonnull > ID_SHARE:
            role, reason = "ignored", f"unique id ({distinct} distinct in {nonnull} rows)"
        else:
            role, reason = "categorical", f"{distinct} distinct values"
        if role in ("numeric", "categorical"):
            comp_expr[col] = _bucket_expr(split, col) if role == "numeric" else text_expr(col, t)
        roles.append(ColumnRole(col, role, reason, distinct, null_share))

    # single-column information and leakage
    kept = [r for r in roles if r.role in ("numeric", "categorical")]
    infos: dict[str, float] = {}
    final_roles = []
    for r in roles:
        if r.role not in ("numeric", "categorical"):
            final_roles.append(r)
            continue
        infos[r.name] = holdout_gain(con, labelled, labelled_val, [comp_expr[r.name]], task)
        leak = _leak_score(con, split, data, task, r, types)
        if leak is not None and leak >= LEAK_SCORE:
            metric = "AUC" if task == "binary" else "R²"
            final_roles.append(ColumnRole(r.name, "ignored", f"leakage suspected: alone predicts the label with validation {metric} {leak:.3f}",
                                          r.distinct, r.null_share, infos[r.name]))
            continue
        final_roles.append(ColumnRole(r.name, r.role, r.reason, r.distinct, r.null_share, infos[r.name]))
        if r.role == "numeric":
            numeric.append(NumericFeature(r.name, "standardize", NUMERIC_BUCKETS, True, False))
        else:
            hashed = r.distinct > MAX_VOCAB
            n_ids = min(r.distinct, 1 << 20) + 1
            buckets = int(min(1 << 20, max(1024, 1 << int(np.ceil(np.log2(r.distinct))))))
            categorical.append(CategoricalFeature(r.name, "hash" if hashed else "vocab", 1, buckets, embedding_dim_for(n_ids), True, True))
    del kept

    feats = [r.name for r in final_roles if r.role in ("numeric", "categorical")]
    pool = sorted(feats, key=lambda c: -infos.get(c, 0))[:CROSS_POOL]
    groups = list(itertools.combinations(pool, 2))
    if triples:
        groups += list(itertools.combinations(pool[:TRIPLE_POOL], 3))
    scored = []
    for group in groups:
        gain = holdout_gain(con, labelled, labelled_val, [comp_expr[c] for c in group], task, cross=True)
        card = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(comp_expr[c] for c in group)} FROM {train})").fetchall()[0][0]
        scored.append((gain, group, int(card)))
    scored.sort(key=lambda s: -s[0])
    crosses = [CrossCandidate(g, float(s), int(k), _unseen_share(con, split, [comp_expr[c] for c in g])) for s, g, k in scored[:20]]
    chosen = [c for c in crosses if c.score > MIN_CROSS_GAIN][:max_crosses]
    cross_specs = [CrossFeature(list(c.columns), "hash", int(min(1 << 20, max(1024, 1 << int(np.ceil(np.log2(2 * c.cardinality)))))), 1) for c in chosen]
    spec = Spec(data=data, features=FeatureSpec(numeric, categorical, cross_specs))
    return Suggestion(spec, task_reason, final_roles, crosses)


def _column_stats(con, relation: str, columns: list[str], types: dict[str, str]) -> dict[str, tuple[int, int, bool]]:
    """(non-null count, distinct count, all values integral) per column, 100 columns a query."""
    out = {}
    for start in range(0, len(columns), 100):
        cols = columns[start : start + 100]
        exprs = []
        for c in cols:
            q = qi(c)
            integral = f"bool_and(CAST({q} AS DOUBLE) = round(CAST({q} AS DOUBLE)))" if is_numeric_type(types[c]) else "false"
            exprs += [f"count({q})", f"count(DISTINCT {q})", integral]
        vals = con.execute(f"SELECT {', '.join(exprs)} FROM {relation}").fetchall()[0]
        for i, c in enumerate(cols):
            out[c] = (int(vals[3 * i]), int(vals[3 * i + 1]), bool(vals[3 * i + 2]))
    return out


def _leak_score(con, split: Split, data: DataSpec, task: str, role: ColumnRole, types: dict[str, str]) -> float | None:
    """Validation AUC (binary) or R² (regression) of the column alone, target-encoded on train."""
    from .preprocess import Preprocessor, number_expr, text_expr

    if split.n_val == 0:
        return None
    prep = Preprocessor(FeatureSpec(), data.label, task, data.positive_class, types)
    y = prep.label_expr()
    if role.role == "numeric":
        x = number_expr(role.name)
        rows = con.sql(f"SELECT coalesce({x}, (SELECT avg({x}) FROM {split.train.relation})), {y} FROM {split.val.relation} WHERE {prep.label_filter()}").fetchall()
    else:
        x = text_expr(role.name, types[role.name])
        rows = con.sql(
            f"WITH enc AS (SELECT {x} AS __k, avg({y}) AS __m FROM {split.train.relation} WHERE {prep.label_filter()} GROUP BY 1), "
            f"g AS (SELECT avg({y}) AS __m FROM {split.train.relation} WHERE {prep.label_filter()}) "
            f"SELECT coalesce(enc.__m, (SELECT __m FROM g)), {y} FROM {split.val.relation} v LEFT JOIN enc ON enc.__k IS NOT DISTINCT FROM {x.replace(qi(role.name), 'v.' + qi(role.name))} "
            f"WHERE {prep.label_filter().replace(qi(data.label), 'v.' + qi(data.label))}"
        ).fetchall()
    if len(rows) < 20:
        return None
    arr = np.array(rows, dtype=float)
    score, target = arr[:, 0], arr[:, 1]
    if task == "binary":
        if len(np.unique(target)) < 2 or len(np.unique(score)) < 2:
            return None
        auc = roc_auc_score(target, score)
        return float(max(auc, 1 - auc))
    if role.role == "numeric":
        return float(np.corrcoef(score, target)[0, 1] ** 2) if np.std(score) > 0 else None
    return float(r2_score(target, score))


def _unseen_share(con, split: Split, exprs: list[str]) -> float:
    """Share of validation rows whose combination of values never occurs in training."""
    if split.n_val == 0:
        return 0.0
    keys = ", ".join(f"{e} AS __k{i}" for i, e in enumerate(exprs))
    match = " AND ".join(f"v.__k{i} IS NOT DISTINCT FROM s.__k{i}" for i in range(len(exprs)))
    val = con.sql(
        f"WITH s AS (SELECT DISTINCT {keys}, true AS __hit FROM {split.train.relation}), v AS (SELECT {keys} FROM {split.val.relation}) "
        f"SELECT 1 - count(s.__hit)::DOUBLE / greatest(count(*), 1) FROM v LEFT JOIN s ON {match}"
    ).fetchall()[0]
    return float(val[0] or 0.0)
