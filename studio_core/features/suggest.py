"""A suggested spec for a table and a label, with the reason for every choice.

* Task: binary when the label has two values (positive class: 1/true/yes, else the rarer value),
  regression for a numeric label with more values.
* Column roles: numeric, categorical, or ignored with the reason (the label, constant, all
  missing, unique id, leakage suspected: the column alone scores validation AUC/R² >= 0.99).
* Embedding sizes: ``embedding_dim_for`` = round(1.6 * n_ids^0.56), clipped to [2, 64], and at
  most one dimension per 4 training rows of a value (an id seen 58 times gets 14, not 64: on
  the ratings log, test AUC 0.7631 -> 0.7642 over 3 seeds with 16).  A categorical with fewer
  than 50 training rows per value goes to the wide part only: the linear model memorises it,
  where an embedding would overfit the deep part.
* Wide crosses ranked by their *held-out interaction gain*: the validation log-loss (binary; or
  squared error, regression) saved per row by a smoothed target encoding of the combination,
  fitted on the training split, over the additive combination of its columns' own encodings
  (``cross_score``).  Measured out of sample, so high-cardinality crosses that merely memorise
  the training rows score about zero.  Each candidate carries its cardinality and the share of
  validation rows whose combination was unseen in training.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from studio_core.common.errors import StudioError
from studio_core.data.split import SPLIT_TABLE, Split, clear_split, make_split, source_sql
from studio_core.data.sqlutil import is_boolean_type, is_numeric_type, number_expr, qi, ql, text_expr
from studio_core.data.workspace import Workspace
from studio_core.features.encoders import embedding_dim_for
from studio_core.features.suggest_checks import (
    TREE_BINS,
    distinct_crosses,
    looks_like_code,
    looks_like_group_id,
    numeric_encoding,
    quantity_name,
    table_notes,
)
from studio_core.features.suggest_scores import cross_score, single_column_scores
from studio_core.features.suggest_text import TEXT_WIDE_L2, text_feature
from studio_core.spec.schema import CategoricalFeature, CrossFeature, DataSpec, FeatureSpec, NumericFeature, Spec, TextFeature

MAX_VOCAB = 10_000  # more distinct values than this -> hashing
MIN_ROWS_PER_VALUE_DEEP = 50  # sparser categoricals (user/item ids) go to the wide part only
ROWS_PER_EMBEDDING_DIM = 4  # an embedding gets at most one dimension per this many training rows of a value
SMALL_INT_DISTINCT = 32  # integer columns with at most this many values are categorical
ID_SHARE = 0.9
CODED_CLASSES = 20  # a numeric label of integer codes 0..K-1, K up to this, is multiclass  # text columns with distinct/non-null above this are id-like
LEAK_SCORE = 0.99
MIN_CROSS_GAIN = 1e-4  # nats per validation row
CROSS_POOL = 16  # crosses are searched among the most informative features
TRIPLE_POOL = 7
NUMERIC_BUCKETS = 32  # numerics are standardised *and* their bucket embedded (tails, thresholds)


@dataclass(frozen=True)
class ColumnRole:
    name: str
    role: str  # "label" | "numeric" | "categorical" | "text" | "ignored"
    reason: str
    distinct: int
    null_share: float
    gain: float = 0.0  # held-out loss reduction per row of the column alone


@dataclass(frozen=True)
class CrossCandidate:
    columns: tuple[str, ...]
    score: float  # held-out loss reduction per row beyond the columns alone (see cross_score)
    cardinality: int
    unseen_share: float


@dataclass
class Suggestion:
    spec: Spec
    task_reason: str
    roles: list[ColumnRole] = field(default_factory=list)
    crosses: list[CrossCandidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the analyst should hear before training (suggest_checks)
    group_columns: list[str] = field(default_factory=list)  # columns that look like group ids
    positive_share: float | None = None  # binary: the positive class's share of the training rows
    time_columns: list[str] = field(default_factory=list)  # columns ordering the rows in time (a time split is offered)


def _label_values(ws: Workspace, src: str, label: str, label_type: str) -> list[str]:
    """The label's distinct values as text, rarest first."""
    rows = ws.con.sql(f"SELECT {text_expr(label, label_type)} v, count(*) n FROM {src} WHERE {qi(label)} IS NOT NULL GROUP BY 1 ORDER BY 2, 1").fetchall()
    return [r[0] for r in rows]


def choose_task(values: list[str], numeric: bool, label: str, max_classes: int = 100) -> tuple[str, str, str]:
    """(task, positive class, reason) from the label's distinct values (rarest first): two
    values are binary, more numbers regression, 3 to ``max_classes`` text values multiclass --
    and so are 3 to 20 integer codes 0, 1, ..., K-1 (what a label encoder writes: digits, species
    codes); other numbers (ratings 1-5, counts) stay a regression."""
    if len(values) < 2:
        raise StudioError(f"label {label!r} has {len(values)} distinct value(s); a model needs at least two: pick another label or load more rows")
    if len(values) == 2:
        low = {v.lower(): v for v in values}
        for pos in ("1", "true", "yes", "y", "positive", "pos"):
            if pos in low:
                return "binary", low[pos], f"two values; positive class {low[pos]!r}"
        return "binary", values[0], f"two values; positive class {values[0]!r} (the rarer one)"
    if numeric and 3 <= len(values) <= CODED_CLASSES and sorted(values, key=lambda v: (len(v), v)) == [str(i) for i in range(len(values))]:
        return "multiclass", "", (f"integer codes 0 to {len(values) - 1}: one class each (set data.task to 'regression' "
                                  "if the numbers are amounts)")
    if numeric:
        return "regression", "", f"numeric with {len(values)} distinct values"
    if len(values) <= max_classes:
        return "multiclass", "", f"text with {len(values)} values: one class each (most common {values[-1]!r}, rarest {values[0]!r})"
    raise StudioError(
        f"label {label!r} is text with {len(values)} values, more than data.max_classes = {max_classes} classes; group the rare ones "
        f"with SQL (e.g. CASE WHEN {label} IN (...) THEN {label} ELSE 'other' END) or raise data.max_classes"
    )


def _bucket_expr(split: Split, col: str) -> str:
    """SQL giving the same bucket id as the feature's ``QuantileBucketizer`` will."""
    from studio_core.features.encoders import QuantileBucketizer

    x = number_expr(col)
    bounds = QuantileBucketizer(NUMERIC_BUCKETS).fit(split.train, x).boundaries_
    listed = "[" + ", ".join(repr(b) for b in bounds) + "]::DOUBLE[]"
    return f"CASE WHEN {x} IS NULL THEN 0 ELSE 1 + len(list_filter({listed}, lambda b: b < {x})) END"


def suggest(ws: Workspace, data: DataSpec, max_crosses: int = 3, triples: bool = False) -> Suggestion:
    """Suggest task, roles, encodings, embedding sizes and ranked crosses for ``data``, judged on
    its training and validation rows (never its test rows).  The spec always validates against
    the data; a table with no usable feature column is a StudioError saying why."""
    try:
        return _suggest(ws, data, max_crosses, triples)
    finally:  # leave the workspace as it was: no copies of the rows stay behind
        for name in ("__wd_data_ltrain", "__wd_data_lval", "__wd_data_ktrain", "__wd_data_kval"):
            ws.con.execute(f"DROP TABLE IF EXISTS {qi(name)}")
        clear_split(ws.con, SPLIT_TABLE)


def _suggest(ws: Workspace, data: DataSpec, max_crosses: int, triples: bool) -> Suggestion:
    con = ws.con
    src = source_sql(data)
    types = ws.source(data.table, data.sql).types
    if data.label not in types:
        raise StudioError(f"label column {data.label!r} does not exist; choose one of: {', '.join(list(types)[:20])}")
    label_numeric = is_numeric_type(types[data.label])
    if not con.execute(f"SELECT 1 FROM {src} LIMIT 1").fetchall():
        raise StudioError("the table has no rows; load a file with data rows under its header")
    values = _label_values(ws, src, data.label, types[data.label])
    task, positive, task_reason = choose_task(values, label_numeric, data.label, data.max_classes)
    if data.task == "multiclass" and len(values) >= 3:  # asked for: a numeric label's values as classes
        task, positive, task_reason = "multiclass", "", f"{len(values)} values, each a class (data.task = 'multiclass')"
    if data.task == "binary" and task == "binary" and data.positive_class in values:
        positive = data.positive_class
    data = DataSpec(**{**data.__dict__, "task": task, "positive_class": positive})
    split = make_split(ws, data)
    train = split.train.relation
    # multiclass: the column scores (information, leakage, crosses) judge the most common class against the rest
    target = positive if task == "binary" else values[-1] if task == "multiclass" else ""
    y_expr = (f"CASE WHEN {text_expr(data.label, types[data.label])} = {ql(target)} THEN 1.0 ELSE 0.0 END::DOUBLE" if task != "regression"
              else number_expr(data.label))
    score_task = "regression" if task == "regression" else "binary"
    # materialised once: a SELECT * view over many columns costs ~25 ms to bind on every query
    labelled, labelled_val = qi(split.table + "_ltrain"), qi(split.table + "_lval")
    for name, rel in ((labelled, train), (labelled_val, split.val.relation)):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT *, {y_expr} AS __y FROM {rel} WHERE ({y_expr}) IS NOT NULL")

    n_labelled, positives = con.execute(f"SELECT count(*), coalesce(sum(__y), 0) FROM {labelled}").fetchone()
    events = int(min(positives, n_labelled - positives)) if task != "regression" else int(n_labelled)  # what tree bins can rest on
    candidates = [c for c in types if c != data.label and c != data.split_column]
    stats = _column_stats(con, train, candidates, types)
    roles: list[ColumnRole] = [ColumnRole(data.label, "label", "the label", len(values), 0.0)]
    if data.split_column and data.split_column in types:
        roles.append(ColumnRole(data.split_column, "ignored", f"used by the split (data.split = {data.split!r})", 0, 0.0))
    numeric: list[NumericFeature] = []
    categorical: list[CategoricalFeature] = []
    texts: list[TextFeature] = []
    comp_expr: dict[str, str] = {}
    n_train = max(split.n_train, 1)
    for col in candidates:
        t = types[col]
        nonnull, distinct, integral = stats[col]
        null_share = 1 - nonnull / n_train
        reason, role = "", ""
        found = text_feature(con, train, col, t) if nonnull and distinct > 1 and (t == "VARCHAR" or t.endswith("[]")) else None
        if nonnull == 0:
            role, reason = "ignored", "all values missing"
        elif distinct <= 1:
            role, reason = "ignored", "constant"
        elif found is not None:
            role, reason = "text", found[1]
            texts.append(found[0])
        elif not (is_numeric_type(t) or is_boolean_type(t) or t == "VARCHAR"):
            role, reason = "ignored", f"type {t} is not supported; derive numbers or text from it with SQL"
        elif looks_like_group_id(col, distinct, nonnull, integral, t == "VARCHAR"):
            role, reason = "categorical", f"looks like a group id ({distinct} values, about {nonnull / distinct:.0f} rows each)"
        elif is_numeric_type(t) and looks_like_code(col, distinct, nonnull, integral):
            role, reason = "categorical", f"integer codes of an id ({distinct} values): labels, not quantities"
        elif is_numeric_type(t) and not (integral and distinct <= SMALL_INT_DISTINCT and not quantity_name(col)):
            if integral and distinct == nonnull and nonnull >= 50:
                role, reason = "ignored", "unique id (every value different)"
            else:
                role, reason = "numeric", numeric_encoding(distinct, events, task == "multiclass")[2]
        elif not is_numeric_type(t) and nonnull >= 50 and distinct / nonnull > ID_SHARE:
            role, reason = "ignored", f"unique id ({distinct} distinct in {nonnull} rows)"
        else:
            role, reason = "categorical", f"{distinct} distinct values"
        if role in ("numeric", "categorical"):
            comp_expr[col] = _bucket_expr(split, col) if role == "numeric" else text_expr(col, t)
        roles.append(ColumnRole(col, role, reason, distinct, null_share))

    # single-column information and leakage, all columns in a few UNPIVOT queries
    scores = single_column_scores(con, labelled, labelled_val, {r.name: comp_expr[r.name] for r in roles if r.name in comp_expr}, score_task)
    infos: dict[str, float] = {}
    final_roles = []
    for r in roles:
        if r.role not in ("numeric", "categorical"):
            final_roles.append(r)
            continue
        infos[r.name], leak = scores.get(r.name, (0.0, None))
        if leak is not None and leak >= LEAK_SCORE:
            metric = "AUC" if score_task == "binary" else "R²"
            final_roles.append(ColumnRole(r.name, "ignored", f"leakage suspected: alone predicts the label with validation {metric} {leak:.3f}",
                                          r.distinct, r.null_share, infos[r.name]))
            continue
        final_roles.append(ColumnRole(r.name, r.role, r.reason, r.distinct, r.null_share, infos[r.name]))
        if r.role == "numeric":
            transform, binning, _ = numeric_encoding(r.distinct, events, task == "multiclass")
            numeric.append(NumericFeature(name=r.name, transform=transform, buckets=TREE_BINS if binning == "tree" else NUMERIC_BUCKETS, embed=True,
                                          wide=False, binning=binning))
        else:
            hashed = r.distinct > MAX_VOCAB
            n_ids = min(r.distinct, 1 << 20) + 1
            buckets = int(min(1 << 20, max(1024, 1 << int(np.ceil(np.log2(r.distinct))))))
            rows_per_value = split.n_train * (1 - r.null_share) / max(r.distinct, 1)
            deep = rows_per_value >= MIN_ROWS_PER_VALUE_DEEP  # too few rows per value: memorise in wide, don't embed
            dim = embedding_dim_for(n_ids)
            capped = min(dim, max(2, int(rows_per_value // ROWS_PER_EMBEDDING_DIM)))
            categorical.append(CategoricalFeature(name=r.name, encoding="hash" if hashed else "vocab", min_count=1, hash_buckets=buckets,
                                                  embedding_dim=capped, deep=deep, wide=True))
            if deep and capped < dim:
                final_roles[-1] = ColumnRole(r.name, r.role, f"{r.reason}; embedding {capped} wide, not {dim} ({rows_per_value:.0f} training rows "
                                             f"per value: at most one dimension per {ROWS_PER_EMBEDDING_DIM})", r.distinct, r.null_share, infos[r.name])
            if not deep:
                final_roles[-1] = ColumnRole(r.name, r.role, f"{r.reason}; wide only ({rows_per_value:.0f} rows per value: too few to learn an embedding)",
                                             r.distinct, r.null_share, infos[r.name])

    feats = [r.name for r in final_roles if r.role in ("numeric", "categorical")]
    pool = sorted(feats, key=lambda c: -infos.get(c, 0))[:CROSS_POOL]
    groups = list(itertools.combinations(pool, 2))
    if triples:
        groups += list(itertools.combinations(pool[:TRIPLE_POOL], 3))
    # the pool's bucket / text values computed once (a numeric bucket is a list search per row)
    keys = {c: f"k{i}" for i, c in enumerate(pool)}
    coded, coded_val = qi(split.table + "_ktrain"), qi(split.table + "_kval")
    for name, rel in ((coded, labelled), (coded_val, labelled_val)):
        cols = "".join(f", {comp_expr[c]} AS {keys[c]}" for c in pool)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT __y{cols} FROM {rel}")
    scored = []
    for group in groups:
        # one query's cells give the gain, the training combinations and the unseen share
        gain, card, unseen = cross_score(con, coded, coded_val, [keys[c] for c in group], score_task)
        scored.append((gain, group, card, unseen))
    scored.sort(key=lambda s: -s[0])
    crosses = [CrossCandidate(g, float(s), int(k), u) for s, g, k, u in scored[:20]]
    chosen, notes = distinct_crosses(con, train, [c for c in crosses if c.score > MIN_CROSS_GAIN], comp_expr, max_crosses)
    # a cross whose combinations fit a vocabulary gets one (no collisions, readable weights); a larger one is hashed
    cross_specs = [CrossFeature(columns=list(c.columns), encoding="vocab" if c.cardinality <= MAX_VOCAB else "hash",
                                hash_buckets=int(min(1 << 20, max(1024, 1 << int(np.ceil(np.log2(2 * c.cardinality)))))), min_count=1)
                   for c in chosen]
    if not numeric and not categorical and not texts:
        why = "; ".join(f"{r.name}: {r.reason}" for r in final_roles if r.role == "ignored")
        raise StudioError(f"no column can be a feature for label {data.label!r} ({why or 'the table has only the label'}); "
                          "add columns that describe the rows, or derive some with SQL")
    if not any(c.wide for c in categorical) and not cross_specs and not texts:
        # a table of numbers only: their quantile buckets make the wide (linear) part a step function of each
        for f in numeric:
            f.wide = True
        final_roles = [ColumnRole(r.name, r.role, f"{r.reason}; its quantile buckets feed the wide part (no categorical column to do so)", r.distinct,
                                  r.null_share, r.gain) if r.role == "numeric" else r for r in final_roles]
    spec = Spec(data=data, features=FeatureSpec(numeric=numeric, categorical=categorical, crosses=cross_specs, text=texts))
    if any(t.kind == "text" for t in texts):  # a bag of words is a linear model over many rare tokens: it needs L2 (reviews: test AUC 0.877 -> 0.913 wide only)
        spec.model.wide_l2 = TEXT_WIDE_L2
    share, groups, times, table = table_notes(con, train, labelled, data, [r for r in final_roles if r.role in ("numeric", "categorical")], stats, types)
    return Suggestion(spec, task_reason, final_roles, crosses, table + notes, groups, share, times)


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
