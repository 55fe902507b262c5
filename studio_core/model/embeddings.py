"""The deep part's categorical embeddings, looked up once per embedding width instead of once per field.

A table with 26 categorical fields did 26 embedding lookups per forward pass and 26 embedding
backwards (each a sort, a unique, a scan and a segment sum on a GPU: over 200 kernels a step,
measured on an H200 in bench/gpu_check.py).  ``FieldEmbeddings`` stores the fields that share
an embedding width as one table, rows offset per field, so a forward pass is one gather per
width and the backward one scatter per width.  The output is laid out exactly as the per-field
lookups were (field after field), so the first layer's columns, the Shapley fast path and ONNX
export see the same input; the initial weights are those the per-field ``nn.Embedding``s drew;
and a state dict saved with per-field keys (``embeddings.3.weight``) still loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class _Field:
    """One field's view of its table (what ``nn.Embedding`` offered: width, size, lookup)."""

    def __init__(self, owner: FieldEmbeddings, k: int):
        self.owner, self.k = owner, k
        self.embedding_dim, self.num_embeddings = owner.dims[k], owner.cardinalities[k]

    @property
    def weight(self) -> torch.Tensor:
        g, at = self.owner.place[self.k]
        return self.owner.tables[g][at : at + self.num_embeddings]

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.weight)


class FieldEmbeddings(nn.Module):
    """Embeddings of ``len(cardinalities)`` fields: field k maps ids ``0..cardinalities[k]-1``
    to vectors of width ``dims[k]``, initialised N(0, ``std``)."""

    def __init__(self, cardinalities: Sequence[int], dims: Sequence[int], std: float = 0.05):
        super().__init__()
        self.cardinalities, self.dims = [int(n) for n in cardinalities], [int(d) for d in dims]
        widths = list(dict.fromkeys(self.dims))  # in order of first appearance
        self.groups = [[k for k, d in enumerate(self.dims) if d == w] for w in widths]
        self.place: list[tuple[int, int]] = [(0, 0)] * len(self.dims)  # field -> (table, first row)
        sizes = []
        for g, fields in enumerate(self.groups):
            at = 0
            for k in fields:
                self.place[k] = (g, at)
                at += self.cardinalities[k]
            sizes.append(at)
        self.tables = nn.ParameterList(nn.Parameter(torch.empty(n, w)) for n, w in zip(sizes, widths))
        with torch.no_grad():
            for k, (n, d) in enumerate(zip(self.cardinalities, self.dims)):
                torch.empty(n, d).normal_()  # the draw nn.Embedding's constructor made, so seeds give the weights they gave
                g, at = self.place[k]
                self.tables[g][at : at + n].normal_(0.0, std)
        # the output's columns back in field order (None: already in order, one width or widths in runs)
        order = [k for fields in self.groups for k in fields]
        starts, col = {}, 0
        for k in order:
            starts[k] = col
            col += self.dims[k]
        columns = [starts[k] + j for k in range(len(self.dims)) for j in range(self.dims[k])]
        self.column_order = None if columns == sorted(columns) else columns
        self._cache: dict[tuple[str, torch.dtype], list[tuple[slice | torch.Tensor, torch.Tensor | None]]] = {}
        self._order_cache: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.dims)

    def __getitem__(self, k: int) -> _Field:
        return _Field(self, k)

    @property
    def width(self) -> int:
        return sum(self.dims)

    def _indices(self, cat: torch.Tensor) -> list[tuple[slice | torch.Tensor, torch.Tensor | None]]:
        """Per table: the columns of ``cat`` it serves -- a slice when they are adjacent (a view,
        no kernel), else an index tensor -- and their row offsets (None for a table of one
        field, whose offset is 0), as tensors on ``cat``'s device (plain attributes, not
        buffers: see WideDeep)."""
        key = (str(cat.device), cat.dtype)
        found = self._cache.get(key)
        if found is None:
            found = []
            for fields in self.groups:
                adjacent = fields == list(range(fields[0], fields[-1] + 1))
                columns = slice(fields[0], fields[-1] + 1) if adjacent else torch.tensor(fields, dtype=torch.int64, device=cat.device)
                offsets = None if len(fields) == 1 else torch.tensor([self.place[k][1] for k in fields], dtype=cat.dtype, device=cat.device)
                found.append((columns, offsets))
            self._cache[key] = found
        return found

    def grouped(self, cat: torch.Tensor) -> list[torch.Tensor]:
        """(batch, fields of the table, width) per table: one gather each."""
        out = []
        for table, (columns, offsets) in zip(self.tables, self._indices(cat)):
            ids = cat[:, columns] if isinstance(columns, slice) else cat.index_select(1, columns)
            out.append(nn.functional.embedding(ids if offsets is None else ids + offsets, table))
        return out

    def forward(self, cat: torch.Tensor) -> torch.Tensor:
        """(batch, sum of widths): each field's vector, field after field."""
        if not self.dims:
            return torch.zeros(cat.shape[0], 0, device=cat.device)
        parts = [e.flatten(1) for e in self.grouped(cat)]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if self.column_order is None:
            return x
        order = self._order_cache.get(str(x.device))
        if order is None:
            order = self._order_cache[str(x.device)] = torch.tensor(self.column_order, dtype=torch.int64, device=x.device)
        return x.index_select(1, order)

    def per_field(self, cat: torch.Tensor) -> list[torch.Tensor]:
        """Each field's (batch, width) vectors, in field order (for field attention)."""
        found: list[torch.Tensor | None] = [None] * len(self.dims)
        for fields, e in zip(self.groups, self.grouped(cat)):
            for j, k in enumerate(fields):
                found[k] = e[:, j]
        return found  # type: ignore[return-value]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """A run saved before the fields shared tables keeps ``{prefix}{k}.weight`` per field:
        stacked into this module's tables before loading."""
        if f"{prefix}0.weight" in state_dict:
            for g, fields in enumerate(self.groups):
                state_dict[f"{prefix}tables.{g}"] = torch.cat([state_dict.pop(f"{prefix}{k}.weight") for k in fields])
        super()._load_from_state_dict(state_dict, prefix, *args)


class TokenBags(nn.Module):
    """The deep part's text and multi-valued fields: each field's token embeddings averaged over
    the row's tokens.  Token id 0 (padding, an unseen or rare token) is left out of the average,
    so a row's vector depends only on the tokens it has; a row without tokens gets zeros."""

    def __init__(self, cardinalities: Sequence[int], dims: Sequence[int], lengths: Sequence[int], std: float = 0.05):
        super().__init__()
        self.dims, self.lengths = [int(d) for d in dims], [int(n) for n in lengths]
        self.tables = nn.ParameterList(nn.Parameter(torch.empty(int(n), int(d)).normal_(0.0, std)) for n, d in zip(cardinalities, dims))

    def __len__(self) -> int:
        return len(self.dims)

    @property
    def width(self) -> int:
        return sum(self.dims)

    def one(self, k: int, ids: torch.Tensor) -> torch.Tensor:
        """Field ``k``'s averaged vectors (batch, dim) from its token ids (batch, length)."""
        mask = (ids != 0).unsqueeze(-1)
        summed = (nn.functional.embedding(ids, self.tables[k]) * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp(min=1)

    def per_field(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Each field's (batch, dim) vector; ``ids`` holds the fields' token columns side by side."""
        out, at = [], 0
        for k, n in enumerate(self.lengths):
            out.append(self.one(k, ids[:, at : at + n]))
            at += n
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(batch, sum of dims): the fields' vectors, field after field."""
        parts = self.per_field(ids)
        return torch.cat(parts, dim=1) if parts else ids.new_zeros((ids.shape[0], 0), dtype=torch.float32)
