"""The fitted preprocessing of a spec: raw columns -> wide ids, deep ids, numeric floats, label.

``Preprocessor.fit`` learns every encoder from SQL aggregates over the training rows;
``transform`` streams Arrow record batches out of DuckDB and encodes them in bulk.  Its JSON
``state()`` is what a run directory stores and what the model is sized from (``layout()``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from studio_core.common.jsonsafe import json_safe
from studio_core.data.sqlutil import number_expr, qi, ql, text_expr, tokens_expr
from studio_core.features.cross_labels import LABELS_KEPT, combination_labels
from studio_core.features.encoded import ColumnCodes, Encoded, Layout
from studio_core.features.encoders import (
    CrossEncoder,
    HashEncoder,
    QuantileBucketizer,
    Source,
    Standardizer,
    VocabEncoder,
    embedding_dim_for,
    encoder_from_state,
    encoder_state,
    fold_codes,
    text_codes,
)
from studio_core.features.piecewise import PiecewiseLinear
from studio_core.features.text import TokenEncoder
from studio_core.spec.schema import SCALED_TRANSFORMS, FeatureSpec

BATCH_ROWS = 262_144


@dataclass
class Preprocessor:
    """All encoders of one spec plus the label mapping; state round-trips through JSON."""

    features: FeatureSpec
    label: str = ""
    task: str = "binary"
    positive_class: str = ""
    column_types: dict[str, str] = field(default_factory=dict)
    encoders_: dict[str, Any] = field(default_factory=dict)
    label_mean_: float = 0.0
    label_std_: float = 1.0
    classes_: list[str] = field(default_factory=list)  # multiclass: the training rows' label values as text, sorted; output k is classes_[k]
    max_classes: int = 100
    notes_: list[str] = field(default_factory=list)  # what fitting decided on its own (columns hashed, ...)

    # ---- expressions ----------------------------------------------------------------------
    def _text(self, col: str) -> str:
        return text_expr(col, self.column_types.get(col, "VARCHAR"))

    def _numeric_cols(self) -> set[str]:
        return {f.name for f in self.features.numeric}

    def _text_cols(self) -> set[str]:
        return {f.name for f in self.features.text}

    def input_columns(self) -> list[str]:
        """Feature columns in the fixed order of ``select_sql``'s outputs (n{i} / t{i} / l{i})."""
        return sorted({f.name for f in self.features.categorical} | self._numeric_cols() | self._text_cols())

    def output_keys(self) -> dict[str, str]:
        """Input column -> its output column in ``select_sql``: n{i} numbers, t{i} text, l{i} token lists."""
        numeric, text = self._numeric_cols(), self._text_cols()
        return {name: (f"n{i}" if name in numeric else f"l{i}" if name in text else f"t{i}") for i, name in enumerate(self.input_columns())}

    def tokens_sql(self, name: str) -> str:
        """SQL giving text / multi column ``name``'s tokens as a list."""
        f = next(x for x in self.features.text if x.name == name)
        return tokens_expr(name, self.column_types.get(name, "VARCHAR"), f.kind, f.delimiter, f.ngrams)

    def label_expr(self) -> str:
        if self.task == "binary":
            return f"CASE WHEN {self._text(self.label)} = {ql(self.positive_class)} THEN 1.0 ELSE 0.0 END"
        if self.task == "multiclass":  # the class's index; a value no training row has is NULL (left out, and counted by the run)
            cases = " ".join(f"WHEN {ql(c)} THEN {k}.0" for k, c in enumerate(self.classes_))
            return f"CASE {self._text(self.label)} {cases} END" if cases else "CAST(NULL AS DOUBLE)"
        return number_expr(self.label)

    def label_filter(self) -> str:
        if self.task == "multiclass":
            return f"({self.label_expr()}) IS NOT NULL"
        return f"{qi(self.label)} IS NOT NULL" if self.task == "binary" else f"({number_expr(self.label)}) IS NOT NULL"

    def unknown_class_filter(self) -> str:
        """Multiclass: rows whose label is a value no training row has (what ``label_filter`` leaves out)."""
        return f"{qi(self.label)} IS NOT NULL AND ({self.label_expr()}) IS NULL"

    @property
    def n_outputs(self) -> int:
        """The network's outputs per row: one per class (multiclass), else one."""
        return len(self.classes_) if self.task == "multiclass" else 1

    # ---- fit ------------------------------------------------------------------------------
    def fit(self, source: Source) -> Preprocessor:
        enc: dict[str, Any] = {}
        self.notes_ = []
        if self.task == "multiclass":
            self._fit_classes(source)
        cap = int(self.features.max_vocabulary)
        for f in self.features.categorical:
            e = VocabEncoder(min_count=f.min_count, max_size=cap + 1) if f.encoding == "vocab" else HashEncoder(f.hash_buckets)
            e.fit(source, self._text(f.name))
            if isinstance(e, VocabEncoder) and len(e.vocabulary_) > cap:  # a vocabulary this large would not fit an embedding table
                e = HashEncoder(cap).fit()
                self.notes_.append(f"{f.name}: more than {cap:,} distinct values, so it is hashed into {cap:,} buckets "
                                   "(raise features.max_vocabulary to keep a vocabulary)")
            enc[f"cat:{f.name}"] = e
        for f in self.features.text:
            enc[f"txt:{f.name}"] = TokenEncoder(f.encoding, f.min_count, f.max_tokens, f.hash_buckets, f.max_length, f.deep_min_count).fit(source, self.tokens_sql(f.name))
        crossed = {c for x in self.features.crosses for c in x.columns}
        label = f"CASE WHEN {self.label_filter()} THEN {self.label_expr()} END"  # tree bins: NULL for rows without a label
        for f in self.features.numeric:
            scaled = None
            if f.transform in ("standardize", "periodic"):
                scaled = Standardizer().fit(source, number_expr(f.name))
            elif f.transform in ("piecewise", "quantile"):
                scaled = PiecewiseLinear(f.buckets, f.transform, f.binning if f.transform == "piecewise" else "quantile").fit(source, number_expr(f.name), label)
            if scaled is not None:
                enc[f"std:{f.name}"] = scaled  # the key of every scaled value (runs before piecewise named it so)
            if f.transform == "bucketize" or f.embed or f.wide or f.name in crossed:
                # a piecewise column's buckets are its bins, so its wide weights are its effect curve
                enc[f"bkt:{f.name}"] = (QuantileBucketizer.fitted(scaled.edges_[1:-1]) if isinstance(scaled, PiecewiseLinear)
                                        else QuantileBucketizer(f.buckets).fit(source, number_expr(f.name)))
        self.encoders_ = enc
        for i, x in enumerate(self.features.crosses):
            cross = CrossEncoder(x.encoding, x.hash_buckets, x.min_count)
            exprs = [self._cross_component_expr(c) for c in x.columns]
            rows = []
            if x.encoding == "vocab":
                rows = source.all(f"SELECT {', '.join(exprs)}, count(*) FROM {{src}} GROUP BY ALL LIMIT {cap + 1}")
                if len(rows) > cap:  # too many combinations to hold: hash them, as for a large vocabulary column
                    cross = CrossEncoder("hash", cap, x.min_count).fit()
                    self.notes_.append(f"cross {' x '.join(x.columns)}: more than {cap:,} combinations, so it is hashed into {cap:,} buckets "
                                       "(raise features.max_vocabulary to keep a vocabulary)")
                else:
                    combos = [self._combo_codes(c, [r[j] for r in rows]) for j, c in enumerate(x.columns)]
                    cross.fit(combos, np.array([r[-1] for r in rows], dtype=np.int64))
            else:
                cross.fit()
            if cross.encoding == "hash":  # name each bucket by its most frequent combinations
                rows = source.all(f"SELECT {', '.join(exprs)}, count(*) AS n FROM {{src}} GROUP BY ALL ORDER BY n DESC LIMIT {4 * LABELS_KEPT}")
                combos = [self._combo_codes(c, [r[j] for r in rows]) for j, c in enumerate(x.columns)]
            cross.labels_ = {str(k): v for k, v in combination_labels(x.columns, rows, combos, cross.transform(combos), self._describe).items()} if rows else {}
            enc[f"cross:{i}"] = cross
        if self.task == "regression":
            mean, std = source.one(f"avg({number_expr(self.label)}), stddev_pop({number_expr(self.label)})")
            self.label_mean_, self.label_std_ = float(mean or 0.0), float(std or 1.0) or 1.0
        return self

    def _fit_classes(self, source: Source) -> None:
        from studio_core.common.errors import StudioError

        rows = source.all(f"SELECT {self._text(self.label)} AS v, count(*) FROM {{src}} WHERE {qi(self.label)} IS NOT NULL GROUP BY 1 ORDER BY 1")
        if len(rows) > int(self.max_classes):
            raise StudioError(f"label {self.label!r} has {len(rows)} values in the training rows, more than data.max_classes = {self.max_classes}; "
                              "group the rare classes with SQL (CASE WHEN ... ELSE 'other' END), or raise data.max_classes")
        if len(rows) < 2:
            raise StudioError(f"label {self.label!r} has {len(rows)} value(s) in the training rows; a classifier needs at least two")
        self.classes_ = [str(r[0]) for r in rows]
        self.class_counts_ = [int(r[1]) for r in rows]

    def _cross_component_expr(self, col: str) -> str:
        return number_expr(col) if col in self._numeric_cols() else self._text(col)

    def _describe(self, col: str, value: Any, code: int) -> str:
        """A cross component as text: a numeric one as the interval of its bucket ``code``."""
        if col in self._numeric_cols():
            return self.encoders_[f"bkt:{col}"].label(code)
        return "(missing)" if value is None else str(value)

    def _combo_codes(self, col: str, values: list[Any]) -> np.ndarray:
        """Component codes of distinct combinations, exactly as ``transform`` computes them."""
        if col in self._numeric_cols():
            return self.encoders_[f"bkt:{col}"].transform(pa.array(values, pa.float64()))
        return text_codes(pa.array(values, pa.string()))

    # ---- layout ---------------------------------------------------------------------------
    def layout(self) -> Layout:
        enc, f = self.encoders_, self.features
        wide_fields, wide_dim = [], 0
        for c in f.categorical:
            if c.wide:
                wide_fields.append(c.name)
                wide_dim += enc[f"cat:{c.name}"].n_ids_
        for n in f.numeric:
            if n.wide:
                wide_fields.append(f"{n.name} (bucket)")
                wide_dim += enc[f"bkt:{n.name}"].n_ids_
        for i, x in enumerate(f.crosses):
            wide_fields.append(" x ".join(x.columns))
            wide_dim += enc[f"cross:{i}"].n_ids_
        wide_text = [t for t in f.text if t.wide]
        for t in wide_text:
            wide_fields.append(t.name)
            wide_dim += enc[f"txt:{t.name}"].n_ids_
        wide_pad = wide_dim if wide_text else -1
        wide_dim += 1 if wide_text else 0
        deep_text = [t for t in f.text if t.deep]
        deep, cards, dims = [], [], []
        for c in f.categorical:
            if c.deep:
                deep.append(c.name)
                cards.append(enc[f"cat:{c.name}"].n_ids_)
                dims.append(int(c.embedding_dim))
        for n in f.numeric:
            if n.transform == "bucketize" or n.embed:
                deep.append(n.name if n.transform == "bucketize" else f"{n.name} (bucket)")
                cards.append(enc[f"bkt:{n.name}"].n_ids_)
                dims.append(int(n.embedding_dim) or embedding_dim_for(enc[f"bkt:{n.name}"].n_ids_))
        numeric, periodic = [], []
        for n in f.numeric:
            if n.transform not in SCALED_TRANSFORMS:
                continue
            if n.transform == "periodic":
                periodic.append(len(numeric))
            numeric += enc[f"std:{n.name}"].input_names(n.name)
        return Layout(tuple(wide_fields), wide_dim, tuple(deep), tuple(cards), tuple(dims), tuple(numeric), tuple(periodic),
                      tuple(t.name for t in deep_text), tuple(enc[f"txt:{t.name}"].deep_n_ids_ for t in deep_text),
                      tuple(int(t.embedding_dim) for t in deep_text), tuple(int(t.max_length) for t in deep_text),
                      tuple(int(t.max_length) for t in wide_text), wide_pad, self.n_outputs)

    def wide_offsets(self) -> list[tuple[str, int, int]]:
        """(field, first global id, number of ids) for every wide field, in order (text fields
        last, each taking ``max_length`` columns of the wide array; the padding row is not listed)."""
        out, start = [], 0
        for key in self._wide_keys():
            n = self.encoders_[key].n_ids_
            out.append((key, start, n))
            start += n
        return out

    def _wide_keys(self) -> list[str]:
        f = self.features
        return ([f"cat:{c.name}" for c in f.categorical if c.wide] + [f"bkt:{n.name}" for n in f.numeric if n.wide]
                + [f"cross:{i}" for i in range(len(f.crosses))] + [f"txt:{t.name}" for t in f.text if t.wide])

    # ---- transform ------------------------------------------------------------------------
    def select_sql(self, relation: str, with_label: bool, available: set[str] | None = None, key: bool = False) -> str:
        """The SELECT feeding ``transform``: one column per encoder input (NULL if absent), the
        label, and with ``key`` the row number ``__wd_row`` of a split part."""
        cols = []
        for i, name in enumerate(self.input_columns()):
            present = available is None or name in available
            if name in self._numeric_cols():
                cols.append(f"{number_expr(name) if present else 'CAST(NULL AS DOUBLE)'} AS n{i}")
            elif name in self._text_cols():
                cols.append(f"{self.tokens_sql(name) if present else 'CAST(NULL AS VARCHAR[])'} AS l{i}")
            else:
                cols.append(f"{self._text(name) if present else 'CAST(NULL AS VARCHAR)'} AS t{i}")
        if with_label:
            cols.append(f"{self.label_expr()} AS y")
        if key:
            cols.append("__wd_row AS __key")
        where = f" WHERE {self.label_filter()}" if with_label else ""
        return f"SELECT {', '.join(cols) or '1 AS dummy'} FROM {relation}{where}"

    def transform(self, source: Source, with_label: bool = True, available: set[str] | None = None) -> Encoded:
        """Encode every row of ``source`` (streamed in record batches)."""
        parts = [(e.wide, e.cat, e.num, e.y) for e in self.transform_batches(source, with_label, available)]
        if not parts:
            layout = self.layout()
            return Encoded(np.zeros((0, layout.wide_width), np.int64), np.zeros((0, layout.cat_width), np.int64),
                           np.zeros((0, len(layout.numeric_inputs)), np.float32), np.zeros(0, np.float32) if with_label else None)
        return Encoded(*(np.concatenate([p[i] for p in parts]) if parts[0][i] is not None else None for i in range(4)))

    def transform_batches(self, source: Source, with_label: bool = True, available: set[str] | None = None,
                          batch_rows: int = BATCH_ROWS, key: bool = False) -> Iterator[Encoded]:
        """Encode ``source`` one Arrow record batch at a time: memory stays at one batch.  With
        ``key`` each batch carries its rows' ``__wd_row`` numbers."""
        keys = self.output_keys()
        reader = source.con.sql(self.select_sql(source.relation, with_label, available, key)).to_arrow_reader(batch_rows)
        for batch in reader:
            yield self._encode_batch(batch, keys, with_label, key)

    def _encode_batch(self, batch: Any, keys: dict[str, str], with_label: bool, key: bool = False) -> Encoded:
        wide, cat, num = self.assemble(self.column_codes({name: batch.column(k) for name, k in keys.items()}, batch.num_rows))
        y = label = None
        if with_label:
            label = batch.column("y").to_numpy(zero_copy_only=False).astype(np.float64)
            # centred in float64, then narrowed: a label near 1e9 keeps its digits
            y = (label if self.task != "regression" else (label - self.label_mean_) / self.label_std_).astype(np.float32)
        rows = batch.column("__key").to_numpy(zero_copy_only=False).astype(np.int64) if key else None
        return Encoded(wide, cat, num, y, rows, label)

    def column_codes(self, col: dict[str, Any], n: int) -> ColumnCodes:
        """Stage 1 of encoding: everything that depends on one column at a time (ids, hash
        codes, buckets, scaled values).  ``col`` maps each input column to its Arrow array as
        ``select_sql`` gives it.  Explanations mix these per column between rows."""
        enc, f = self.encoders_, self.features
        crossed_text = {c for x in f.crosses for c in x.columns} - self._numeric_cols()
        return ColumnCodes(
            n,
            {c.name: enc[f"cat:{c.name}"].transform(col[c.name]) for c in f.categorical},
            {c: text_codes(col[c]) for c in sorted(crossed_text)},
            {x.name: enc[f"bkt:{x.name}"].transform(col[x.name]) for x in f.numeric if f"bkt:{x.name}" in enc},
            {x.name: enc[f"std:{x.name}"].transform(col[x.name]) for x in f.numeric if x.transform in SCALED_TRANSFORMS},
            {x.name: enc[f"txt:{x.name}"].transform(col[x.name]) for x in f.text},
        )

    def assemble(self, codes: ColumnCodes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 2: per-column codes -> the model's (wide ids, deep ids, numeric inputs),
        folding crosses from their components' codes."""
        enc, f, n = self.encoders_, self.features, codes.n
        wide = [codes.cat_ids[c.name] for c in f.categorical if c.wide] + [codes.buckets[x.name] for x in f.numeric if x.wide]
        for i, x in enumerate(f.crosses):
            parts = [codes.buckets[c] if c in codes.buckets else codes.text_codes[c] for c in x.columns]
            wide.append(enc[f"cross:{i}"].transform(parts))
        offsets = [start for _, start, _ in self.wide_offsets()]
        wide = [(w + o)[:, None] for w, o in zip(wide, offsets)]
        wide_text = [t for t in f.text if t.wide]
        if wide_text:  # a text field's token ids, "no token" (0) as the padding row, whose weight stays 0
            pad = self.layout().wide_pad
            for t, o in zip(wide_text, offsets[len(offsets) - len(wide_text):]):
                ids = codes.tokens[t.name]
                wide.append(np.where(ids > 0, ids + o, pad))
        wide_arr = np.concatenate(wide, axis=1) if wide else np.zeros((n, 0), np.int64)
        deep = [codes.cat_ids[c.name][:, None] for c in f.categorical if c.deep]
        deep += [codes.buckets[x.name][:, None] for x in f.numeric if x.transform == "bucketize" or x.embed]
        deep += [enc[f"txt:{t.name}"].deep_ids(codes.tokens[t.name]) for t in f.text if t.deep]
        cat_arr = np.concatenate(deep, axis=1) if deep else np.zeros((n, 0), np.int64)
        nums = [codes.scaled[x.name] for x in f.numeric if x.transform in SCALED_TRANSFORMS]
        num_arr = np.concatenate(nums, axis=1) if nums else np.zeros((n, 0), np.float32)
        return wide_arr.astype(np.int64), cat_arr.astype(np.int64), num_arr.astype(np.float32)

    def encode_columns(self, source: Source, available: set[str] | None = None) -> ColumnCodes:
        """Stage-1 codes of every row of ``source`` (no label), for explanations."""
        keys = self.output_keys()
        table = source.con.sql(self.select_sql(source.relation, False, available)).to_arrow_table()
        return self.column_codes({name: table.column(k) for name, k in keys.items()}, table.num_rows)

    # ---- state ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "features": asdict(self.features), "label": self.label, "task": self.task,
            "positive_class": self.positive_class, "column_types": self.column_types,
            "label_mean_": self.label_mean_, "label_std_": self.label_std_, "notes_": list(self.notes_),
            "classes_": list(self.classes_), "class_counts_": list(getattr(self, "class_counts_", [])), "max_classes": self.max_classes,
            "encoders_": {k: encoder_state(v) for k, v in self.encoders_.items()},
        }

    def to_json(self) -> str:
        """The state as the JSON a run, a bundle and the distributed ranks carry."""
        return json.dumps(json_safe(self.state()), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Preprocessor:
        return cls.from_state(json.loads(text))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Preprocessor:
        from studio_core.spec.schema import Spec

        features = Spec.from_dict({"features": state["features"]}).features
        prep = cls(features, state["label"], state["task"], state["positive_class"], dict(state["column_types"]))
        prep.label_mean_, prep.label_std_ = float(state["label_mean_"]), float(state["label_std_"])
        prep.notes_ = [str(n) for n in state.get("notes_", [])]
        prep.classes_ = [str(c) for c in state.get("classes_", [])]
        prep.class_counts_ = [int(c) for c in state.get("class_counts_", [])]
        prep.max_classes = int(state.get("max_classes", 100))
        prep.encoders_ = {k: encoder_from_state(v) for k, v in state["encoders_"].items()}
        return prep

    def decode_label(self, raw: np.ndarray) -> np.ndarray:
        """Model output -> prediction: probability (binary), per-class probabilities (multiclass,
        (n, K)) or value on the label's scale."""
        if self.task == "multiclass":
            from studio_core.common.multiclass import softmax

            return softmax(raw)
        if self.task == "binary":
            return 1.0 / (1.0 + np.exp(-raw.astype(np.float64)))
        return raw.astype(np.float64) * self.label_std_ + self.label_mean_


__all__ = ["Preprocessor", "Encoded", "ColumnCodes", "Layout", "Source", "text_expr", "number_expr", "fold_codes"]
