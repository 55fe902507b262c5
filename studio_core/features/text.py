"""Token ids of text and multi-valued columns, fitted from one DuckDB aggregate.

A text cell becomes a list of tokens in SQL (``data.sqlutil.tokens_expr``); this encoder maps
each token to an id -- a vocabulary of the tokens found in the most training rows, or hashing --
and a row to the ids of its first ``max_length`` distinct known tokens, padded with 0.  Id 0
means "no token" (padding, an unseen or rare token): the model gives it no weight and no
embedding, so a row's score depends only on the tokens it has.  Work on strings is done once
per distinct token of a batch (Arrow dictionary encoding); the rows are then handled as NumPy
arrays, never one by one in Python.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from studio_core.data.source import Source
from studio_core.features.value_codes import dictionary_codes, hash_text


class TokenEncoder:
    """Token -> id (1..n by descending training document frequency, or hashed); a row -> its
    first ``max_length`` distinct known token ids, 0-padded."""

    def __init__(self, encoding: str = "vocab", min_count: int = 2, max_tokens: int = 20_000, buckets: int = 65_536,
                 max_length: int = 64, deep_min_count: int = 1):
        self.encoding = encoding
        self.min_count = min_count
        self.max_tokens = max_tokens
        self.buckets = buckets
        self.max_length = max_length
        self.deep_min_count = deep_min_count

    def fit(self, source: Source, expr: str) -> TokenEncoder:
        """``expr``: SQL giving each row's token list.  Counts rows per token (a token repeated
        in one row counts once), the training rows only (``source``)."""
        rows, mean = source.one(f"count(*), avg(len(list_distinct({expr})))")
        self.rows_, self.mean_tokens_ = int(rows or 0), float(mean or 0.0)
        if self.encoding == "hash":
            self.vocabulary_, self.counts_ = None, None
            self.n_ids_ = self.deep_n_ids_ = int(self.buckets) + 1
            return self
        found = source.all(
            f"SELECT tok, count(*) AS n FROM (SELECT unnest(list_distinct({expr})) AS tok FROM {{src}}) "
            f"WHERE tok IS NOT NULL AND tok <> '' GROUP BY tok HAVING count(*) >= {int(self.min_count)} "
            f"ORDER BY n DESC, tok LIMIT {int(self.max_tokens)}"
        )
        self.vocabulary_ = [str(r[0]) for r in found]
        self.counts_ = [int(r[1]) for r in found]
        self.n_ids_ = len(self.vocabulary_) + 1
        # ids are in descending count, so the tokens common enough for an embedding are ids 1..deep_n_ids_ - 1
        self.deep_n_ids_ = 1 + sum(1 for c in self.counts_ if c >= int(self.deep_min_count))
        return self

    def deep_ids(self, ids: np.ndarray) -> np.ndarray:
        """The deep part's ids of token ids: a token too rare for an embedding becomes 0 (none)."""
        return np.where(ids < int(self.deep_n_ids_), ids, 0)

    def token_ids(self, tokens: list[str]) -> np.ndarray:
        """Ids of distinct tokens (0: not kept)."""
        if self.encoding == "hash":
            return 1 + hash_text(tokens) % int(self.buckets) if tokens else np.zeros(0, np.int64)
        index = getattr(self, "_index", None)
        if index is None:
            index = self._index = {v: i + 1 for i, v in enumerate(self.vocabulary_)}
        return np.array([index.get(t, 0) for t in tokens], dtype=np.int64)

    def transform(self, lists: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """(n, max_length) int64: each row's distinct known token ids in order of first
        appearance, then 0s.  A NULL or empty cell is all 0s."""
        if isinstance(lists, pa.ChunkedArray):
            lists = lists.combine_chunks() if lists.num_chunks else pa.array([], pa.list_(pa.string()))
        n, width = len(lists), int(self.max_length)
        out = np.zeros((n, width), np.int64)
        if n == 0 or width == 0:
            return out
        flat = pc.list_flatten(lists)
        if len(flat) == 0:
            return out
        rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
        uniques, idx = dictionary_codes(flat)
        ids = np.concatenate([self.token_ids([str(u) for u in uniques]), np.zeros(1, np.int64)])[idx]  # idx -1 (NULL) -> 0
        known = ids > 0
        rows, ids = rows[known], ids[known]
        # first appearance of each (row, id): unique keys, their first positions back in row order
        _, first = np.unique(rows * int(self.n_ids_) + ids, return_index=True)
        first.sort()
        rows, ids = rows[first], ids[first]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        keep = rank < width
        out[rows[keep], rank[keep]] = ids[keep]
        return out

    def label(self, i: int) -> str:
        """Token id ``i`` as text (a hashed id as its bucket number)."""
        if i == 0:
            return "(no token)"
        return str(self.vocabulary_[i - 1]) if self.vocabulary_ is not None else f"#{i}"
