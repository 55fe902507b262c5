"""``validate(spec, table)``: every problem with a spec, each with its field and its fix.

One place for all checks, so the UI can mark every bad field at once and the CLI can refuse a
spec before any work starts.  Without a table only the spec's own consistency is checked.
"""

from __future__ import annotations

import math

import duckdb

from studio_core.common.errors import Problem, StudioError
from studio_core.data.sqlutil import is_boolean_type, is_numeric_type, qi, text_expr
from studio_core.data.workspace import Table
from studio_core.features.sizing import size_problems
from studio_core.spec.schema import (
    BINNINGS,
    CATEGORICAL_ENCODINGS,
    CLASS_WEIGHTS,
    CROSS_ENCODINGS,
    DEEP_OPTIMIZERS,
    DEVICES,
    MONITORS,
    NUMERIC_TRANSFORMS,
    OUT_OF_CORE,
    SPEC_VERSION,
    SPLITS,
    TASKS,
    TEXT_KINDS,
    WIDE_OPTIMIZERS,
    Spec,
)

RESERVED_PREFIX = "__wd_"


def _choice(problems: list[Problem], field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        problems.append(Problem(field, f"{value!r} is not one of {', '.join(allowed)}", f"set it to one of {', '.join(allowed)}"))


def _number(problems: list[Problem], field: str, value: float, low: float, high: float = math.inf, low_open: bool = False) -> None:
    bad = not math.isfinite(value) or value < low or value > high or (low_open and value == low)
    if bad:
        rng = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if math.isfinite(high) else "")
        problems.append(Problem(field, f"{value} is out of range", f"use a value {rng}"))


def validate(spec: Spec, table: Table | None = None) -> list[Problem]:
    """All problems of ``spec``; checks against ``table``'s columns and label when given."""
    p: list[Problem] = []
    d, f, m, t = spec.data, spec.features, spec.model, spec.train
    if spec.version != SPEC_VERSION:
        p.append(Problem("version", f"spec version {spec.version} is not supported", f"use version {SPEC_VERSION}"))
    if not d.label:
        p.append(Problem("data.label", "no label column chosen", "pick the column to predict"))
    _choice(p, "data.task", d.task, TASKS)
    if d.task == "binary" and not d.positive_class:
        p.append(Problem("data.positive_class", "no positive class chosen", "pick the label value that counts as 1"))
    _choice(p, "data.split", d.split, SPLITS)
    if d.split != "column":
        _number(p, "data.validation_fraction", d.validation_fraction, 0.0, 0.9, low_open=True)
        _number(p, "data.test_fraction", d.test_fraction, 0.0, 0.9)
        if d.validation_fraction + d.test_fraction >= 0.95:
            p.append(Problem("data.test_fraction", f"validation ({d.validation_fraction}) and test ({d.test_fraction}) leave almost no training rows",
                             "keep validation_fraction + test_fraction below 0.95, e.g. 0.15 and 0.15"))
    _number(p, "data.max_test_rows", d.max_test_rows, 0)
    if d.split in ("time", "group", "column") and not d.split_column:
        p.append(Problem("data.split_column", f"a {d.split!r} split needs a column", {
            "time": "name the column that orders the rows (a date or time)", "group": "name the column whose values must stay together (e.g. a user id)",
            "column": "name the column whose values say train, validation or test"}[d.split]))
    if d.split == "random" and d.split_column:
        p.append(Problem("data.split_column", f"{d.split_column!r} is set but data.split is 'random'",
                         "set data.split to 'time', 'group' or 'column', or clear data.split_column"))
    if not d.table and not d.sql.strip():
        p.append(Problem("data.table", "no table chosen", "pick a loaded table or write data.sql"))

    names = spec.feature_names()
    for i, name in enumerate(names):
        if name in names[:i]:
            p.append(Problem("features", f"column {name!r} is used as a feature twice", "keep one entry for it"))
    if d.label and d.label in names:
        p.append(Problem("features", f"the label {d.label!r} is also a feature", "remove it from the features"))
    if not names:
        p.append(Problem("features", "no feature columns", "add at least one numeric, categorical or text column"))
    for i, n in enumerate(f.numeric):
        _choice(p, f"features.numeric[{i}].transform", n.transform, NUMERIC_TRANSFORMS)
        _choice(p, f"features.numeric[{i}].binning", n.binning, BINNINGS)
        _number(p, f"features.numeric[{i}].buckets", n.buckets, 2, 1000)
        _number(p, f"features.numeric[{i}].embedding_dim", n.embedding_dim, 0, 1024)
    for i, c in enumerate(f.categorical):
        field = f"features.categorical[{i}]"
        _choice(p, f"{field}.encoding", c.encoding, CATEGORICAL_ENCODINGS)
        _number(p, f"{field}.min_count", c.min_count, 1)
        _number(p, f"{field}.hash_buckets", c.hash_buckets, 1, 1 << 24)
        _number(p, f"{field}.embedding_dim", c.embedding_dim, 1, 1024)
    for i, x in enumerate(f.text):
        field = f"features.text[{i}]"
        _choice(p, f"{field}.kind", x.kind, TEXT_KINDS)
        _choice(p, f"{field}.encoding", x.encoding, CATEGORICAL_ENCODINGS)
        _number(p, f"{field}.ngrams", x.ngrams, 1, 2)
        _number(p, f"{field}.min_count", x.min_count, 1)
        _number(p, f"{field}.max_tokens", x.max_tokens, 1, 1 << 22)
        _number(p, f"{field}.hash_buckets", x.hash_buckets, 1, 1 << 24)
        _number(p, f"{field}.max_length", x.max_length, 1, 4096)
        _number(p, f"{field}.embedding_dim", x.embedding_dim, 1, 1024)
        _number(p, f"{field}.deep_min_count", x.deep_min_count, 1)
        if x.kind == "multi" and not x.delimiter:
            p.append(Problem(f"{field}.delimiter", "a multi-valued column needs a delimiter", "set the character between the values, e.g. '|'"))
        if not (x.wide or x.deep):
            p.append(Problem(f"{field}", f"text column {x.name!r} feeds neither part", "set wide, deep or both, or remove the column"))
    _number(p, "features.max_vocabulary", f.max_vocabulary, 1, 1 << 24)
    for i, x in enumerate(f.crosses):
        field = f"features.crosses[{i}]"
        if not 2 <= len(x.columns) <= 3:
            p.append(Problem(f"{field}.columns", f"a cross needs 2 or 3 columns, got {len(x.columns)}", "pick 2 or 3 feature columns"))
        if len(set(x.columns)) != len(x.columns):
            p.append(Problem(f"{field}.columns", "a column appears twice in the cross", "cross distinct columns"))
        text_names = {t.name for t in f.text}
        for col in x.columns:
            if col in text_names:
                p.append(Problem(f"{field}.columns", f"{col!r} is a text column, which cannot be crossed", "cross numeric or categorical columns"))
            elif col not in names:
                p.append(Problem(f"{field}.columns", f"{col!r} is not a feature", "add it as a numeric or categorical feature first"))
        _choice(p, f"{field}.encoding", x.encoding, CROSS_ENCODINGS)
        _number(p, f"{field}.hash_buckets", x.hash_buckets, 1, 1 << 24)
        _number(p, f"{field}.min_count", x.min_count, 1)

    if not m.wide and not m.deep:
        p.append(Problem("model", "both the wide and the deep part are switched off", "switch on model.wide, model.deep or both"))
    if m.wide and not (any(c.wide for c in f.categorical) or any(n.wide for n in f.numeric) or f.crosses or any(t.wide for t in f.text)):
        p.append(Problem("model.wide", "the wide part has no inputs", "mark columns 'wide', add a cross, or switch model.wide off"))
    if m.deep and not names:
        p.append(Problem("model.deep", "the deep part has no inputs", "add features or switch model.deep off"))
    for i, u in enumerate(m.hidden_units):
        _number(p, f"model.hidden_units[{i}]", u, 1, 65536)
    _number(p, "model.dropout", m.dropout, 0.0, 0.95)
    _number(p, "model.wide_l1", m.wide_l1, 0.0)
    _number(p, "model.wide_l2", m.wide_l2, 0.0, 1.0)
    _number(p, "model.token_dropout", m.token_dropout, 0.0, 0.95)
    if any(n.transform == "periodic" for n in f.numeric):
        _number(p, "model.periodic_frequencies", m.periodic_frequencies, 1, 1024)
        _number(p, "model.periodic_dim", m.periodic_dim, 1, 1024)
        _number(p, "model.periodic_scale", m.periodic_scale, 0.0, 1000.0, low_open=True)
    if m.attention:
        _number(p, "model.attention_dim", m.attention_dim, 1, 1024)
        _number(p, "model.attention_heads", m.attention_heads, 1, 64)
        _number(p, "model.attention_layers", m.attention_layers, 1, 16)
        if m.attention_heads >= 1 and m.attention_dim % max(m.attention_heads, 1):
            p.append(Problem("model.attention_dim", f"{m.attention_dim} is not divisible by {m.attention_heads} heads", "make attention_dim a multiple of attention_heads"))
    _number(p, "model.ensemble", m.ensemble, 1, 64)

    _number(p, "train.epochs", t.epochs, 1, 10000)
    _number(p, "train.batch_size", t.batch_size, 0, 1 << 20)
    _number(p, "train.deep_lr", t.deep_lr, 0.0, 10.0, low_open=True)
    _number(p, "train.wide_lr", t.wide_lr, 0.0, 10.0, low_open=True)
    _number(p, "train.weight_decay", t.weight_decay, 0.0)
    _number(p, "train.warmup_steps", t.warmup_steps, 0)
    _number(p, "train.grad_clip", t.grad_clip, 0.0)
    _number(p, "train.positive_weight", t.positive_weight, 0.0, 1e6, low_open=True)
    _number(p, "train.early_stopping_patience", t.early_stopping_patience, 0)
    _number(p, "train.max_minutes", t.max_minutes, 0.0)
    _number(p, "train.plateau_patience", t.plateau_patience, 0)
    _number(p, "train.plateau_factor", t.plateau_factor, 0.0, 1.0, low_open=True)
    _choice(p, "train.deep_optimizer", t.deep_optimizer, DEEP_OPTIMIZERS)
    _choice(p, "train.wide_optimizer", t.wide_optimizer, WIDE_OPTIMIZERS)
    _choice(p, "train.device", t.device, DEVICES)
    _choice(p, "train.monitor", t.monitor, MONITORS)
    _choice(p, "train.out_of_core", t.out_of_core, OUT_OF_CORE)
    _number(p, "train.out_of_core_rows", t.out_of_core_rows, 0)
    allowed = {"binary": {"auc", "logloss", "accuracy"}, "regression": {"rmse", "mae", "r2"},
               "multiclass": {"accuracy", "logloss", "macro_f1", "macro_auc"}}.get(d.task, set()) | {"auto", "loss"}
    if t.monitor in MONITORS and t.monitor not in allowed:
        p.append(Problem("train.monitor", f"{t.monitor!r} is not a {d.task} metric", f"use 'auto' or one of: {', '.join(sorted(allowed - {'auto'}))}"))
    _choice(p, "train.class_weight", t.class_weight, CLASS_WEIGHTS)
    if t.class_weight != "none" and d.task != "multiclass":
        p.append(Problem("train.class_weight", f"class weights are for multiclass labels, not {d.task}",
                         "set it to 'none'" + ("; for rare positives set train.positive_weight (negatives per positive)" if d.task == "binary" else "")))
    if d.task == "multiclass":
        _number(p, "data.max_classes", d.max_classes, 3, 10_000)
        if m.ensemble > 1:
            p.append(Problem("model.ensemble", "an ensemble of members is not built for multiclass labels yet", "set model.ensemble to 1"))
    if not p:  # sizes are only meaningful for an otherwise valid spec
        p += size_problems(spec)
    if table is not None:
        p += _check_table(spec, table)
    return p


def _check_table(spec: Spec, table: Table) -> list[Problem]:
    p: list[Problem] = []
    d, cols = spec.data, set(table.columns)
    hint = ", ".join(table.columns[:12]) + (" …" if len(table.columns) > 12 else "")
    try:
        empty = not table.guard(lambda: table.con.sql(f"SELECT 1 FROM {table.ref} LIMIT 1").fetchall())
    except (duckdb.Error, StudioError) as exc:  # StudioError: past the query timeout
        return p + [Problem("data", f"the rows cannot be read ({str(exc).splitlines()[0]})", "fix data.table or data.sql")]
    if empty:  # column types of an empty file are guesses: say what is really wrong, and only that
        return p + [Problem("data", "the table has no rows", "load a file with rows, or fix data.sql's WHERE")]
    reserved = [c for c in table.columns if c.lower().startswith(RESERVED_PREFIX)]
    if reserved:  # the split adds __wd_row / __wd_hash / __wd_part beside the rows: a user's column would be shadowed
        names = ", ".join(repr(c) for c in reserved)
        p.append(Problem("data", f"column name(s) {names} start with {RESERVED_PREFIX!r}, which the studio keeps for its own columns",
                         f"rename them, e.g. data.sql: SELECT * EXCLUDE ({qi(reserved[0])}), {qi(reserved[0])} AS {qi(reserved[0].lstrip('_'))} FROM …"))
    if d.label and d.label not in cols:
        p.append(Problem("data.label", f"column {d.label!r} does not exist", f"choose one of: {hint}"))
    if d.split_column and d.split_column not in cols:
        p.append(Problem("data.split_column", f"column {d.split_column!r} does not exist", f"choose one of: {hint} or leave it empty"))
    elif d.split == "column" and d.split_column:
        from studio_core.data.split import check_split_column

        try:
            bad = table.guard(lambda: check_split_column(table.con, table.ref, d.split_column))
        except (duckdb.Error, StudioError) as exc:
            return p + [Problem("data", f"the rows cannot be read ({str(exc).splitlines()[0]})", "fix data.table or data.sql")]
        if bad:
            p.append(Problem("data.split_column", f"column {d.split_column!r} has value(s) {', '.join(bad)}",
                             "make every value train, validation or test (any case), e.g. with CASE in data.sql"))
    for kind, feats in (("numeric", spec.features.numeric), ("categorical", spec.features.categorical)):
        for i, feat in enumerate(feats):
            if feat.name not in cols:
                p.append(Problem(f"features.{kind}[{i}].name", f"column {feat.name!r} does not exist", f"remove it or choose one of: {hint}"))
            elif kind == "numeric" and not (is_numeric_type(table.types[feat.name]) or is_boolean_type(table.types[feat.name])):
                p.append(Problem(f"features.{kind}[{i}].name", f"column {feat.name!r} is {table.types[feat.name]}, not numeric", "make it categorical"))
            elif str(table.types[feat.name]).endswith("[]"):
                p.append(Problem(f"features.{kind}[{i}].name", f"column {feat.name!r} is a list ({table.types[feat.name]})", "make it a multi-valued text feature"))
    for i, x in enumerate(spec.features.text):
        t = str(table.types.get(x.name, ""))
        if x.name not in cols:
            p.append(Problem(f"features.text[{i}].name", f"column {x.name!r} does not exist", f"remove it or choose one of: {hint}"))
        elif t.endswith("[]") and x.kind != "multi":
            p.append(Problem(f"features.text[{i}].kind", f"column {x.name!r} is a list ({t}), not text", "set kind to 'multi'"))
        elif t.endswith("[]") and t.count("[]") > 1:
            p.append(Problem(f"features.text[{i}].name", f"column {x.name!r} is a nested list ({t})", "flatten it with SQL (flatten(...)) first"))
        elif not t.endswith("[]") and t != "VARCHAR":
            p.append(Problem(f"features.text[{i}].name", f"column {x.name!r} is {t}, not text", "make it categorical or numeric"))
    if d.label in cols:
        try:
            values = [r[0] for r in table.guard(lambda: table.con.sql(
                f"SELECT DISTINCT {text_expr(d.label, table.types[d.label])} FROM {table.ref} WHERE {qi(d.label)} IS NOT NULL LIMIT 3").fetchall())]
        except (duckdb.Error, StudioError) as exc:
            return p + [Problem("data", f"the rows cannot be read ({str(exc).splitlines()[0]})", "fix data.table or data.sql")]
        if len(values) < 2:
            p.append(Problem("data.label", f"label {d.label!r} has {len(values)} distinct value(s)", "a model needs at least two: pick another label or load more rows"))
        elif d.task == "binary":
            if len(values) > 2:
                p.append(Problem("data.task", f"label {d.label!r} has more than two values", "use task 'regression' for a numeric label, or derive a two-valued label with SQL"))
            elif d.positive_class and d.positive_class not in values:
                p.append(Problem("data.positive_class", f"{d.positive_class!r} is not a value of {d.label!r}", f"use one of: {', '.join(map(repr, values))}"))
        elif d.task == "multiclass":
            try:
                (n,) = table.guard(lambda: table.con.sql(f"SELECT count(DISTINCT {qi(d.label)}) FROM {table.ref}").fetchall()[0])
            except (duckdb.Error, StudioError) as exc:
                return p + [Problem("data", f"the rows cannot be read ({str(exc).splitlines()[0]})", "fix data.table or data.sql")]
            if n > d.max_classes:
                p.append(Problem("data.max_classes", f"label {d.label!r} has {n} values, more than {d.max_classes} classes",
                                 "group the rare classes with SQL (CASE WHEN ... ELSE 'other' END), or raise data.max_classes"))
        elif d.task == "regression" and not is_numeric_type(table.types[d.label]):
            p.append(Problem("data.task", f"label {d.label!r} is not numeric", "use task 'binary' or pick a numeric label"))
    return p
