"""What preprocessing makes of rows: per-column codes, the model's input arrays, and their layout.

``ColumnCodes`` holds each input column's encoding separately (so explanations can mix columns
between rows); ``Encoded`` holds the assembled model inputs; ``Layout`` is what the model is
sized from.  Kept apart from ``Preprocessor`` so the model and the exporters can import the
shapes without the fitting code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Encoded:
    """Model inputs for n rows as NumPy arrays; ``y`` is None when the label is absent."""

    wide: np.ndarray  # int64 (n, n_wide_fields), global wide ids
    cat: np.ndarray  # int64 (n, n_deep_fields), per-field ids
    num: np.ndarray  # float32 (n, n_numeric_inputs)
    y: np.ndarray | None = None  # float32 (n,)
    key: np.ndarray | None = None  # int64 (n,) the rows' ``__wd_row`` numbers, when asked for
    label: np.ndarray | None = None  # float64 (n,) the label as read (0/1, or the value): batches of transform_batches only

    def __len__(self) -> int:
        return len(self.wide)


@dataclass
class ColumnCodes:
    """Per-input-column encodings of n rows, before they are assembled into model inputs.

    Every array is indexed by row and belongs to exactly one input column, so rows can be mixed
    column by column (``mix``): that is how an explanation masks a column with a background row's
    value without re-running SQL."""

    n: int
    cat_ids: dict[str, np.ndarray]  # categorical column -> ids
    text_codes: dict[str, np.ndarray]  # text column used in a cross -> murmur3 codes (NULL -> 0)
    buckets: dict[str, np.ndarray]  # numeric column -> bucket ids
    scaled: dict[str, np.ndarray]  # numeric column entering the deep part as numbers -> (n, width) float32
    tokens: dict[str, np.ndarray] = field(default_factory=dict)  # text / multi column -> (n, max_length) token ids, 0-padded

    def mix(self, columns: list[str], rows: np.ndarray) -> ColumnCodes:
        """Codes of ``len(rows)`` new rows where column ``columns[j]`` takes its codes from row
        ``rows[:, j]`` of this set."""
        at = {c: rows[:, j] for j, c in enumerate(columns)}

        def pick(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {c: a[at[c]] for c, a in d.items()}

        return ColumnCodes(len(rows), pick(self.cat_ids), pick(self.text_codes), pick(self.buckets), pick(self.scaled), pick(self.tokens))

    @staticmethod
    def concat(parts: list[ColumnCodes]) -> ColumnCodes:
        def cat(name: str) -> dict[str, np.ndarray]:
            return {c: np.concatenate([getattr(p, name)[c] for p in parts]) for c in getattr(parts[0], name)}

        return ColumnCodes(sum(p.n for p in parts), cat("cat_ids"), cat("text_codes"), cat("buckets"), cat("scaled"), cat("tokens"))


@dataclass(frozen=True)
class Layout:
    """What the model needs to know about its inputs (sizes only).

    The ``wide`` array has one column per single-column term and cross, then ``wide_text_lengths[k]``
    columns per text field in the wide part (its token ids; padding is the all-zero row
    ``wide_pad``).  The ``cat`` array has one column per ``deep_fields`` entry, then
    ``text_lengths[k]`` columns per text field in the deep part (per-field token ids, 0 = none)."""

    wide_fields: tuple[str, ...]  # every wide term's name, text fields last
    wide_dim: int  # rows of the wide weight table (with the padding row, when there is one)
    deep_fields: tuple[str, ...]
    deep_cardinalities: tuple[int, ...]
    deep_embedding_dims: tuple[int, ...]
    numeric_inputs: tuple[str, ...]
    periodic_inputs: tuple[int, ...] = ()  # indices into numeric_inputs that get periodic embeddings
    text_fields: tuple[str, ...] = ()  # text / multi columns in the deep part (an averaged embedding each)
    text_cardinalities: tuple[int, ...] = ()
    text_embedding_dims: tuple[int, ...] = ()
    text_lengths: tuple[int, ...] = ()
    wide_text_lengths: tuple[int, ...] = ()  # per text field in the wide part (the last len() of wide_fields)
    wide_pad: int = -1  # the wide id of "no token" (a weight kept at 0); -1 when no text field is wide
    outputs: int = 1  # outputs per row: one per class for multiclass (the wide weights and the deep head are this wide)

    @property
    def wide_width(self) -> int:
        """Columns of the ``wide`` array."""
        return len(self.wide_fields) - len(self.wide_text_lengths) + sum(self.wide_text_lengths)

    @property
    def cat_width(self) -> int:
        """Columns of the ``cat`` array."""
        return len(self.deep_fields) + sum(self.text_lengths)
