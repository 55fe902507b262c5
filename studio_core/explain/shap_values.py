"""SHAP values per original column, with an independent masker over background rows.

Every explanation sees one feature per *original* column, never an embedding dimension.
Masking column ``j`` of a row means taking that column's value from a background row; because
``ColumnCodes`` keeps every column's encodings apart, that is an index gather (no SQL per masked
sample), and crosses are re-assembled from the mixed codes, so a cross is credited to the
columns it is built from.  ``shapley`` computes the values: the wide part exactly, the deep part
by antithetic permutations.  Base value + sum of SHAP values equals the model's output.

Output explained: log-odds for binary runs (what the wide and deep parts add up to), the
prediction on the label's scale for regression.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from studio_core.common.errors import Cancelled, StudioError
from studio_core.data.source import Source
from studio_core.data.sqlutil import qi
from studio_core.explain import shapley
from studio_core.features.preprocess import ColumnCodes
from studio_core.runs.store import Run, predict_raw

DEFAULT_ROWS, DEFAULT_BACKGROUND = 200, 100
# shap's permutation explainer draws from NumPy's process-wide generator (it seeds it itself): one
# chunk of rows at a time holds it, re-seeded per chunk, so two explanations on two threads give
# the same values as each alone
_SHAP_RNG = threading.Lock()


@dataclass(frozen=True)
class Explanation:
    columns: tuple[str, ...]  # the original feature columns, in the order of ``values``
    values: np.ndarray  # (n, n_columns) SHAP values on the output scale
    base_value: float  # mean output over the background rows
    outputs: np.ndarray  # (n,) the model's output for each explained row
    data: pd.DataFrame  # the explained rows' raw feature values (plus __wd_row when known)
    output_name: str  # "log-odds" or the label's name
    seconds: float

    def importance(self) -> pd.DataFrame:
        """Global importance: mean |SHAP| per column, largest first."""
        mean_abs = np.abs(self.values).mean(axis=0) if len(self.values) else np.zeros(len(self.columns))
        df = pd.DataFrame({"feature": list(self.columns), "mean_abs_shap": mean_abs})
        return df.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)

    def long_frame(self) -> pd.DataFrame:
        """One row per (explained row, column): SHAP value, raw value and the value's
        percentile among the explained rows (numeric columns; NaN for text) -- the beeswarm."""
        n, m = self.values.shape
        pct = {}
        for c in self.columns:
            x = pd.to_numeric(self.data[c], errors="coerce") if c in self.data else pd.Series(np.nan, index=range(n))
            pct[c] = x.rank(pct=True).to_numpy() if x.notna().any() and not _is_text(self.data.get(c)) else np.full(n, np.nan)
        return pd.DataFrame({
            "row": np.repeat(np.arange(n), m),
            "feature": np.tile(list(self.columns), n),
            "shap": self.values.reshape(-1),
            "value": [_show(self.data[c].iloc[i]) if c in self.data else "" for i in range(n) for c in self.columns],
            "percentile": np.stack([pct[c] for c in self.columns], axis=1).reshape(-1) if m else np.zeros(0),
        })

    def waterfall_frame(self, i: int) -> pd.DataFrame:
        """Row ``i``'s contributions from the base value to its output, largest |SHAP| first."""
        vals = self.values[i]
        order = np.argsort(-np.abs(vals), kind="stable")
        start = self.base_value + np.concatenate([[0.0], np.cumsum(vals[order])[:-1]])
        return pd.DataFrame({
            "feature": [self.columns[j] for j in order],
            "value": [_show(self.data[self.columns[j]].iloc[i]) if self.columns[j] in self.data else "" for j in order],
            "shap": vals[order], "start": start, "end": start + vals[order],
        })


def _is_text(series: pd.Series | None) -> bool:
    return series is not None and not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _show(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return "(missing)"
    return str(v)


class RowFunction:
    """f(index matrix) -> model output, where entry (k, j) says which pooled row column j of
    masked sample k comes from.  This is the function SHAP explains."""

    def __init__(self, run: Run, pool: ColumnCodes, columns: list[str], k: int = 0):
        self.run, self.pool, self.columns, self.k = run, pool, columns, k

    def __call__(self, index: np.ndarray) -> np.ndarray:
        codes = self.pool.mix(self.columns, np.asarray(index, dtype=np.int64))
        return self.outputs(codes)

    def raw(self, codes: ColumnCodes) -> np.ndarray:
        """The network's outputs: (n,), or (n, classes) for multiclass."""
        wide, cat, num = self.run.preprocessor.assemble(codes)
        return predict_raw(self.run.model, (torch.from_numpy(wide), torch.from_numpy(cat), torch.from_numpy(num))).astype(np.float64)

    def outputs(self, codes: ColumnCodes) -> np.ndarray:
        """What is explained: the log-odds (binary), class k's logit (multiclass), the value (regression)."""
        raw, task = self.raw(codes), self.run.preprocessor.task
        if task == "multiclass":
            return raw[:, self.k]
        return raw if task == "binary" else self.run.preprocessor.decode_label(raw)


def output_name(run: Run, k: int = 0) -> str:
    prep = run.preprocessor
    if prep.task == "multiclass":
        return f"logit of {prep.classes_[k]}"
    return "log-odds" if prep.task == "binary" else prep.label


def feature_columns(run: Run) -> list[str]:
    return run.preprocessor.input_columns()


def encode_rows(run: Run, source: Source) -> tuple[ColumnCodes, pd.DataFrame]:
    """Stage-1 codes and raw feature values of every row of ``source``; a feature column the
    source lacks counts as missing, as in ``predict``."""
    return run.preprocessor.encode_columns(source, columns_of(source)), raw_rows(source, feature_columns(run))


def raw_rows(source: Source, columns: list[str]) -> pd.DataFrame:
    """The source's feature columns (and ``__wd_row`` when it has one) as a DataFrame."""
    have = columns_of(source)
    cols = [c for c in (["__wd_row"] + columns) if c in have]
    df = source.con.sql(f"SELECT {', '.join(qi(c) for c in cols) or '1 AS dummy'} FROM {source.relation}").df()
    for c in columns:
        if c not in df:
            df[c] = None  # a column the input lacks is a missing value, as in predict
    return df


def explain(
    run: Run,
    rows: Source,
    background: Source | ColumnCodes,
    max_evals: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    stop_event: threading.Event | None = None,
    chunk: int = 10,
    class_index: int = 0,
) -> Explanation:
    """SHAP values of every row of ``rows`` against the ``background`` rows (a relation, or
    codes already encoded by ``encode_background`` -- what-if reuses them).

    ``max_evals`` (coalitions per row, as in shap) defaults to ``shapley.default_permutations``
    walks; the deep part's cost is rows x walks x 2 x columns x background rows through the
    network after its first layer."""
    started = time.perf_counter()
    codes_b = background if isinstance(background, ColumnCodes) else encode_background(run, background)
    codes_r, data = encode_rows(run, rows)
    return explain_codes(run, codes_r, data, codes_b, max_evals, seed, progress, stop_event, chunk, started, class_index)


def encode_background(run: Run, background: Source) -> ColumnCodes:
    codes = run.preprocessor.encode_columns(background, columns_of(background))
    if codes.n == 0:
        raise StudioError("no background rows to compare with; load the run's training data")
    return codes


def explain_codes(
    run: Run,
    codes_r: ColumnCodes,
    data: pd.DataFrame,
    codes_b: ColumnCodes,
    max_evals: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    stop_event: threading.Event | None = None,
    chunk: int = 10,
    started: float | None = None,
    class_index: int = 0,
) -> Explanation:
    """SHAP values of encoded rows: the wide part exactly, the deep part by permutations
    (``shapley``); ``max_evals`` sets the permutations as ``max_evals // (2m + 1)``, as shap's.
    A multiclass run explains the logit of class ``class_index`` (additive per class)."""
    started = time.perf_counter() if started is None else started
    columns = feature_columns(run)
    m, n, nb = len(columns), codes_r.n, codes_b.n
    if m == 0:
        raise StudioError("this run has no feature columns to explain")
    prep, model = run.preprocessor, run.model
    k = int(class_index) if prep.task == "multiclass" else 0
    if prep.task == "multiclass" and not 0 <= k < len(prep.classes_):
        raise StudioError(f"class index {class_index} is out of range: the run has {len(prep.classes_)} classes")
    f = RowFunction(run, ColumnCodes.concat([codes_r, codes_b]), columns, k)
    x = np.repeat(np.arange(n)[:, None], m, axis=1)
    bg = np.repeat(n + np.arange(nb)[:, None], m, axis=1)
    deep_m = len(shapley.deep_columns(prep, model, codes_b))
    perms = max(1, int(max_evals) // (2 * max(deep_m, 1) + 1)) if max_evals else shapley.default_permutations(deep_m)
    scale = float(prep.label_std_) if prep.task == "regression" else 1.0  # the label's scale is affine in the output
    values = np.zeros((n, m))
    sampled = None if shapley.fast_deep(model) or not model.use_deep else _DeepSampler(run, codes_r, codes_b, columns, perms, seed, k)
    for start in range(0, n, chunk):
        if stop_event is not None and stop_event.is_set():
            raise Cancelled()
        part = codes_r.mix(columns, x[start : start + chunk])
        wide = shapley.wide_values(prep, model, part, codes_b, columns, k)
        if sampled is not None:
            deep = sampled(start, min(n, start + chunk))
        else:
            deep = shapley.deep_values(prep, model, part, codes_b, columns, perms, seed, stop_event=stop_event, row_offset=start, k=k)
        values[start : start + chunk] = (wide + deep) * scale
        if progress is not None:
            progress(min(n, start + chunk), n)
    base = float(f(bg).mean())
    outputs = f(x) if n else np.zeros(0)
    return Explanation(tuple(columns), values, base, outputs, data.reset_index(drop=True), output_name(run, k), time.perf_counter() - started)


class _DeepSampler:
    """The deep part of a model whose first layer mixes columns (attention), sampled through
    ``shap.PermutationExplainer`` on the deep logit alone (the wide part stays exact)."""

    def __init__(self, run: Run, codes_r: ColumnCodes, codes_b: ColumnCodes, columns: list[str], permutations: int, seed: int, k: int = 0):
        import shap

        n, m, nb = codes_r.n, len(columns), codes_b.n
        self.f = _DeepRowFunction(run, ColumnCodes.concat([codes_r, codes_b]), columns, k)
        self.x = np.repeat(np.arange(n)[:, None], m, axis=1)
        bg = np.repeat(n + np.arange(nb)[:, None], m, axis=1)
        self.evals, self.seed = permutations * (2 * m + 1), seed
        with _SHAP_RNG:
            self.explainer = shap.PermutationExplainer(self.f, shap.maskers.Independent(bg, max_samples=nb), seed=seed)

    def __call__(self, start: int, stop: int) -> np.ndarray:
        with _SHAP_RNG:
            np.random.seed((self.seed * 1_000_003 + start) % 2**32)
            return self.explainer(self.x[start:stop], max_evals=self.evals, silent=True).values


class _DeepRowFunction(RowFunction):
    def outputs(self, codes: ColumnCodes) -> np.ndarray:
        _, cat, num = self.run.preprocessor.assemble(codes)
        with torch.inference_mode():
            out = self.run.model.deep_logit(torch.from_numpy(cat), torch.from_numpy(num)).double().numpy()
        return out[:, self.k] if out.ndim == 2 else out


def estimate_seconds(run: Run, rows: int, background: int) -> float | None:
    """About how long ``rows`` rows against ``background`` rows take on this machine now (a
    short measured run of the network on walk states of that size); None where the model's
    deep part is sampled through shap (the live view's ETA then says it)."""
    prep, model = run.preprocessor, run.model
    if model.use_deep and not shapley.fast_deep(model):
        return None
    m = len(feature_columns(run))
    per_row = shapley.seconds_per_row(prep, model, m, background, shapley.default_permutations(m)) if model.use_deep else 0.0
    return rows * (per_row + 0.0005 * len(prep.features.crosses) * background / 100) + 0.5


def frame_source(frame: pd.DataFrame) -> Source:
    """A DataFrame of raw rows as a relation in a private DuckDB connection (what-if rows, so
    the user's workspace is not touched)."""
    import duckdb

    con = duckdb.connect()
    con.register("rows", frame)
    return Source(con, "rows")


def columns_of(source: Source) -> set[str]:
    return {r[0] for r in source.con.sql(f"SELECT * FROM {source.relation} LIMIT 0").description}


def sample_relation(source: Source, n: int, seed: int) -> Source:
    """Up to ``n`` rows of a split relation, chosen by a seeded hash of ``__wd_row`` (the same
    rows every time), in row order."""
    rel = (f"(SELECT * FROM {source.relation} WHERE __wd_row IN (SELECT __wd_row FROM {source.relation} "
           f"ORDER BY hash(__wd_row + {int(seed)} * 1000003), __wd_row LIMIT {int(n)}) ORDER BY __wd_row)")
    return Source(source.con, rel)
