"""Before training, and without torch: validate a spec, split its rows, fit its preprocessing.

``wdstudio train --nproc N`` runs these in the launching process, which never imports torch,
so it holds little memory while its N ranks train."""

from __future__ import annotations

import duckdb

from studio_core.common.errors import SpecError, StudioError
from studio_core.data.split import Split, make_split, source_sql, stream_split, used_columns
from studio_core.data.workspace import Workspace
from studio_core.features.preprocess import Preprocessor
from studio_core.features.validate import validate
from studio_core.spec.schema import DataSpec, Spec, TrainSpec


def count_rows(ws: Workspace, data: DataSpec) -> int | None:
    """The source's row count, or None when it cannot be read (``make_split`` then reports why)."""
    try:
        return int(ws.con.execute(f"SELECT count(*) FROM {source_sql(data)}").fetchall()[0][0])
    except duckdb.Error:
        return None


def use_out_of_core(t: TrainSpec, n_rows: int | None) -> bool:
    """``train.out_of_core``: "always", "never", or "auto" (more rows than ``out_of_core_rows``)."""
    if t.out_of_core != "auto":
        return t.out_of_core == "always"
    return n_rows is not None and n_rows > t.out_of_core_rows


def prepare(spec: Spec, ws: Workspace, world: int = 1) -> tuple[Split, bool]:
    """Validate ``spec`` against the workspace and split its rows: materialised in memory for
    one process, hashed views out of core or for ``world`` > 1 processes (so every rank, on
    its own connection, assigns every row the same way)."""
    problems = validate(spec, ws.source(spec.data.table, spec.data.sql))
    if problems:
        raise SpecError(problems)
    n_rows = count_rows(ws, spec.data) if spec.train.out_of_core == "auto" else None
    streaming = use_out_of_core(spec.train, n_rows)
    if streaming or world > 1:
        return stream_split(ws, spec.data, columns=used_columns(spec)), streaming
    return make_split(ws, spec.data, n_rows=n_rows), streaming


def fit_preprocessor(spec: Spec, split: Split) -> Preprocessor:
    prep = Preprocessor(spec.features, spec.data.label, spec.data.task, spec.data.positive_class, split.column_types)
    prep.max_classes = int(spec.data.max_classes)
    return prep.fit(split.train)


def check_processes(spec: Spec, world: int) -> None:
    """What a spec cannot do with several processes."""
    if world > 1 and spec.train.wide_optimizer == "sparse_adam":
        raise StudioError("train.wide_optimizer 'sparse_adam' cannot be used with several processes; use 'adagrad' or 'sgd'")
