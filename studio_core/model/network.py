"""The Wide & Deep network of Cheng et al. (2016), built from a fitted preprocessing ``Layout``.

* Wide: a sparse linear model -- one ``nn.EmbeddingBag(mode="sum")`` of width 1 over every wide
  id (single columns and crosses share one id space), plus a bias.
* Deep: an embedding per categorical field and the numeric inputs, optionally passed through
  AutoInt-style multi-head self-attention over field embeddings, then an MLP.
The output is one logit (binary) or one value (regression): wide + deep.

With ``ensemble = k > 1`` the MLP is a BatchEnsemble of k members in one network (TabM-mini,
Gorishniy et al. 2025): each member scales the MLP's input by its own random-sign vector, shares
every weight after that, and has its own output head; dropout draws per member.  Training sees
the k member outputs (the loss is their mean); evaluation, export and explanation see their
mean logit, so the output stays wide + deep and every wide/deep decomposition stays exact.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
from torch import nn

from studio_core.features.preprocess import Layout
from studio_core.model.embeddings import FieldEmbeddings, TokenBags
from studio_core.spec.schema import ModelSpec

SPARSE_WIDE_MIN = 200_000
_INIT_LOCK = threading.Lock()  # initial weights come from torch's process-wide generator: one model at a time


class _ScaledMask(torch.autograd.Function):
    """``x * mask`` whose backward reuses the saved float mask (no bool -> float promotion)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class DropoutRandom:
    """The random stream of one model's dropout masks: its own generators, never torch's or
    NumPy's process-wide ones, so two trainings on two threads with the same seed draw the same
    masks (a studio server trains several models at once)."""

    def __init__(self, seed: int = 0):
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.numpy = np.random.default_rng(seed)
        self.seed, self.devices = int(seed), {}

    def on(self, device: torch.device) -> torch.Generator:
        """A torch generator on ``device`` (CUDA draws), seeded from this stream."""
        gen = self.devices.get(str(device))
        if gen is None:
            gen = self.devices[str(device)] = torch.Generator(device).manual_seed(self.seed)
        return gen


class FastDropout(nn.Module):
    """Inverted dropout with a cheaper mask.  On CPU, ``nn.Dropout``'s Bernoulli sampling took a
    quarter of a training step here; the mask now comes from NumPy's PCG64 random bytes (16-bit
    thresholds) of the model's own ``DropoutRandom``, built once as ``keep / (1 - p)`` in
    float32 and applied by one multiply each way (585 us against 917 us for
    bool-mask-then-scale on a 1024 x 256 batch, forward + backward).  On other devices torch's
    uniform draw is used, from a generator of the same stream."""

    def __init__(self, p: float, random: DropoutRandom):
        super().__init__()
        self.p = float(p)
        self.random = random

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type == "cpu" and x.dtype == torch.float32:
            bits = np.frombuffer(self.random.numpy.bytes(2 * x.numel()), dtype=np.uint16).reshape(x.shape)
            mask = torch.from_numpy((bits >= round(self.p * 65536)).astype(np.float32)).mul_(1.0 / (1.0 - self.p))
            return _ScaledMask.apply(x, mask)
        keep = torch.empty_like(x).uniform_(generator=self.random.on(x.device)) >= self.p
        return x * keep / (1.0 - self.p)


class StableBatchNorm(nn.BatchNorm1d):
    """Batch normalisation that also takes a batch of one row while training (the last batch of
    an epoch can be one row): that row is normalised with the running statistics instead of
    failing, and the statistics are left as they are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class _BagSum(torch.autograd.Function):
    """The wide part's ``embedding_bag(mode="sum")`` with a dense backward by ``index_add_``.
    PyTorch's CPU backward for a dense EmbeddingBag sorts the ids first: 1.1-2.2 ms per
    1024 x 12-id batch here, against 0.3-0.5 ms for scattering the gradient with
    ``index_add_`` -- about a tenth of an Adult training step.  Same gradient, same forward."""

    @staticmethod
    def forward(ctx, ids: torch.Tensor, weight: torch.Tensor, pad: int) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.rows, ctx.pad = weight.shape[0], pad
        return nn.functional.embedding_bag(ids, weight, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor, None]:
        (ids,) = ctx.saved_tensors
        spread = grad.repeat_interleave(ids.shape[1], dim=0)  # row r's gradient once per id of row r
        out = grad.new_zeros(ctx.rows, grad.shape[1]).index_add_(0, ids.reshape(-1), spread)
        if ctx.pad >= 0:  # "no token" keeps its weight of 0
            out[ctx.pad] = 0
        return None, out, None


class PeriodicEmbedding(nn.Module):
    """Periodic embeddings of standardised numeric columns (PLR, Gorishniy et al. 2022): per
    column, ``v = 2 pi c x`` for ``k`` trained frequencies ``c`` (initialised N(0, scale): small
    means smooth functions first), then ``[cos v, sin v] -> linear -> ReLU`` of width ``dim``."""

    def __init__(self, columns: int, frequencies: int, dim: int, scale: float):
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(columns, frequencies) * scale)
        bound = 1.0 / math.sqrt(2 * frequencies)  # nn.Linear's default initialisation, per column
        self.weight = nn.Parameter(torch.empty(columns, 2 * frequencies, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(columns, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, columns) -> (batch, columns, dim)
        v = (2 * math.pi) * x.unsqueeze(-1) * self.frequencies
        v = torch.cat([torch.cos(v), torch.sin(v)], dim=-1)
        return torch.relu(torch.einsum("bnk,nkd->bnd", v, self.weight) + self.bias)

    def one(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Column ``k``'s embedding of its values ``x`` (n,) -> (n, dim)."""
        v = (2 * math.pi) * x.unsqueeze(-1) * self.frequencies[k]
        return torch.relu(torch.cat([torch.cos(v), torch.sin(v)], dim=-1) @ self.weight[k] + self.bias[k])


class FieldAttention(nn.Module):
    """Self-attention over per-field vectors (AutoInt): residual multi-head layers."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float, random: DropoutRandom):
        super().__init__()
        # dropout on each layer's output from the model's own stream (nn.MultiheadAttention's
        # own dropout would draw from torch's process-wide generator)
        self.layers = nn.ModuleList(nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.dropout = FastDropout(dropout, random)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:  # (batch, n_fields, dim)
        for attn, norm in zip(self.layers, self.norms):
            out, _ = attn(fields, fields, fields, need_weights=False)
            fields = norm(fields + self.dropout(out))
        return fields


class WideDeep(nn.Module):
    """Wide (sparse linear) + deep (embeddings -> [attention] -> MLP), outputs summed."""

    def __init__(self, layout: Layout, spec: ModelSpec, sparse_wide: bool | None = None, seed: int | None = None):
        """``seed`` fixes the initial weights and the dropout masks (``reseed_dropout`` gives a
        distributed rank its own masks); None (a model about to load saved weights) leaves
        torch's generator as it is."""
        super().__init__()
        with _INIT_LOCK:
            if seed is not None:
                torch.manual_seed(seed)
            self._build(layout, spec, sparse_wide, seed or 0)

    def reseed_dropout(self, seed: int) -> None:
        self.dropout_random.reseed(seed)

    def _build(self, layout: Layout, spec: ModelSpec, sparse_wide: bool | None, seed: int) -> None:
        self.dropout_random = DropoutRandom(seed)
        self.members = 1
        self.use_wide = bool(spec.wide and layout.wide_dim)
        self.use_deep = bool(spec.deep and (layout.deep_fields or layout.numeric_inputs or layout.text_fields))
        self.wide_pad = int(layout.wide_pad)
        self.wide_text_start = layout.wide_width - sum(layout.wide_text_lengths)  # wide columns from here on are text token ids
        self.token_dropout = float(spec.token_dropout)
        self.wide_l2 = float(spec.wide_l2)
        self.outputs = int(layout.outputs)  # one per class (multiclass): each part then gives (batch, outputs)
        self.bias = nn.Parameter(torch.zeros(self.outputs))
        if self.use_wide:
            # sparse gradients pay off for big id spaces; below that, coalescing them costs more
            # (sparse_wide: None = that rule, True / False = forced, e.g. dense for nccl all-reduce)
            sparse = layout.wide_dim > SPARSE_WIDE_MIN if sparse_wide is None else sparse_wide
            # a text field's padding ("no token") is the row wide_pad: excluded from every gradient, so its weight stays 0
            self.wide = nn.EmbeddingBag(layout.wide_dim, self.outputs, mode="sum", sparse=sparse, padding_idx=self.wide_pad if self.wide_pad >= 0 else None)
            nn.init.zeros_(self.wide.weight)
        if self.use_deep:
            # one lookup per embedding width, not per field (see embeddings.py)
            self.embeddings = FieldEmbeddings(layout.deep_cardinalities, layout.deep_embedding_dims, std=0.05)
            self.n_single = len(layout.deep_fields)  # cat's columns after these are text fields' token ids
            self.bags = TokenBags(layout.text_cardinalities, layout.text_embedding_dims, layout.text_lengths, std=0.05) if layout.text_fields else None
            n_num = len(layout.numeric_inputs)
            periodic = sorted(set(layout.periodic_inputs))
            plain = [i for i in range(n_num) if i not in set(periodic)]
            # numeric inputs enter as [plain values..., periodic embeddings...]; plain index lists, not
            # buffers: DistributedDataParallel broadcasts buffers before every forward, and a rank
            # without validation rows runs fewer forwards (the broadcasts would never match)
            self.plain_index, self.periodic_index = plain, periodic
            self._index_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            p_dim = spec.attention_dim if spec.attention else spec.periodic_dim
            self.periodic = PeriodicEmbedding(len(periodic), spec.periodic_frequencies, p_dim, spec.periodic_scale) if periodic else None
            self.attention = None
            if spec.attention:
                d = spec.attention_dim
                self.field_proj = nn.ModuleList(nn.Linear(dim, d, bias=False) for dim in self.embeddings.dims)
                self.text_proj = nn.ModuleList(nn.Linear(dim, d, bias=False) for dim in layout.text_embedding_dims)
                self.num_vectors = nn.Parameter(torch.randn(len(plain), d) * 0.05)
                self.attention = FieldAttention(d, spec.attention_heads, spec.attention_layers, spec.dropout, self.dropout_random)
                width = d * (len(self.embeddings) + len(layout.text_fields) + n_num)
            else:
                width = sum(layout.deep_embedding_dims) + sum(layout.text_embedding_dims) + len(plain) + len(periodic) * p_dim
            self.members = max(1, int(spec.ensemble)) if self.outputs == 1 else 1
            if self.members > 1:  # TabM-mini's adapter: random signs make the members differ from the first step
                self.member_scale = nn.Parameter(torch.randint(0, 2, (self.members, width)).float() * 2 - 1)
            layers: list[nn.Module] = []
            for units in spec.hidden_units:
                layers.append(nn.Linear(width, units))
                if spec.batch_norm:
                    layers.append(StableBatchNorm(units))
                layers += [nn.ReLU(), FastDropout(spec.dropout, self.dropout_random)]
                width = units
            if self.members > 1:  # one head per member, initialised as nn.Linear(width, 1) would be
                bound = 1.0 / math.sqrt(width)
                self.head_weight = nn.Parameter(torch.empty(self.members, width).uniform_(-bound, bound))
                self.head_bias = nn.Parameter(torch.empty(self.members).uniform_(-bound, bound))
            else:
                layers.append(nn.Linear(width, self.outputs))
            self.mlp = nn.Sequential(*layers)

    def _token_keep(self, ids: torch.Tensor) -> torch.Tensor:
        """A training batch's token mask: each token kept with probability 1 - token_dropout."""
        return torch.rand(ids.shape, device=ids.device, generator=self.dropout_random.on(ids.device)) >= self.token_dropout

    def _zeros(self, rows: int, device: torch.device) -> torch.Tensor:
        return torch.zeros((rows,) if self.outputs == 1 else (rows, self.outputs), device=device)

    def wide_logit(self, wide: torch.Tensor) -> torch.Tensor:
        """(batch,) -- or (batch, classes) for multiclass -- the wide part's sum of weights."""
        if not self.use_wide or wide.shape[1] == 0:
            return self._zeros(wide.shape[0], wide.device)
        if self.training and self.token_dropout > 0 and self.wide_text_start < wide.shape[1]:
            # token dropout: a text token's weight counts 1 / (1 - p) times when kept, so the expected sum is the
            # evaluation sum; for a linear model this is an adaptive L2 penalty (Wager et al., 2013)
            text = wide[:, self.wide_text_start :]
            kept = torch.where(self._token_keep(text), text, torch.full_like(text, self.wide_pad))
            terms = nn.functional.embedding(kept, self.wide.weight, padding_idx=self.wide_pad, sparse=self.wide.sparse)
            text_sum = terms.sum(dim=1).squeeze(-1) / (1.0 - self.token_dropout)
            return self._wide_sum(wide[:, : self.wide_text_start]) + text_sum if self.wide_text_start else text_sum
        return self._wide_sum(wide)

    def _wide_sum(self, wide: torch.Tensor) -> torch.Tensor:
        w = self.wide.weight
        if self.training and w.requires_grad and torch.is_grad_enabled() and not self.wide.sparse and w.device.type == "cpu":
            return _BagSum.apply(wide, w, self.wide_pad).squeeze(-1)
        return self.wide(wide).squeeze(-1)

    def deep_logit(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        """The deep part's output per row (an ensemble's: the mean of its members'; multiclass:
        (batch, classes))."""
        if not self.use_deep:
            return self._zeros(cat.shape[0], cat.device)
        out = self.deep_members(cat, num)
        return out if self.outputs > 1 else out.mean(dim=1)

    def deep_members(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        """(batch, members): each ensemble member's deep output (one column without an ensemble;
        multiclass: (batch, classes))."""
        plain, periodic = num, None
        if self.periodic is not None:
            at = self._index_cache.get(str(num.device))
            if at is None:
                at = self._index_cache[str(num.device)] = tuple(torch.tensor(i, dtype=torch.int64, device=num.device)
                                                                 for i in (self.plain_index, self.periodic_index))
            plain, periodic = num.index_select(1, at[0]), self.periodic(num.index_select(1, at[1]))
        single, tokens = cat[:, : self.n_single], cat[:, self.n_single :]
        if self.bags is not None and self.training and self.token_dropout > 0:  # word dropout (a dropped token leaves the average)
            tokens = tokens * self._token_keep(tokens)
        if self.attention is not None:
            fields = [proj(e) for proj, e in zip(self.field_proj, self.embeddings.per_field(single))]
            if self.bags is not None:
                fields += [proj(e) for proj, e in zip(self.text_proj, self.bags.per_field(tokens))]
            if plain.shape[1]:
                fields += list((plain.unsqueeze(-1) * self.num_vectors).unbind(1))
            if periodic is not None:
                fields += list(periodic.unbind(1))
            x = self.attention(torch.stack(fields, dim=1)).flatten(1)
        else:
            bags = [self.bags(tokens)] if self.bags is not None else []
            x = torch.cat([self.embeddings(single), *bags, plain] + ([periodic.flatten(1)] if periodic is not None else []), dim=1)
        if self.members == 1:
            return self.mlp(x)
        b = x.shape[0]
        h = self.mlp((x.unsqueeze(1) * self.member_scale).reshape(b * self.members, -1)).reshape(b, self.members, -1)
        return (h * self.head_weight).sum(dim=-1) + self.head_bias

    def forward(self, wide: torch.Tensor, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        """(batch,) outputs; while an ensemble trains, (batch, members): one output per member."""
        if self.training and self.use_deep and self.members > 1:
            return self.wide_logit(wide).unsqueeze(1) + self.deep_members(cat, num) + self.bias
        return self.wide_logit(wide) + self.deep_logit(cat, num) + self.bias

    def wide_parameters(self) -> list[nn.Parameter]:
        return [self.wide.weight] if self.use_wide else []

    def deep_parameters(self) -> list[nn.Parameter]:
        wide_ids = {id(p) for p in self.wide_parameters()}
        return [p for p in self.parameters() if id(p) not in wide_ids]

    def deep_parameter_groups(self, weight_decay: float) -> list[dict]:
        """The deep parameters in two optimiser groups: weight matrices decayed, and never
        embeddings, biases, normalisation parameters, numeric field vectors or frequencies
        (decay pulls a rare value's embedding to zero and a frequency to a constant)."""
        wide_ids = {id(p) for p in self.wide_parameters()}
        decayed, kept = [], []
        for name, p in self.named_parameters():
            if id(p) in wide_ids:
                continue
            plain = (p.ndim < 2 or name.endswith("bias") or name.startswith(("embeddings.", "bags."))
                     or name in ("num_vectors", "periodic.frequencies", "member_scale"))
            (kept if plain else decayed).append(p)
        return [{"params": decayed, "weight_decay": weight_decay}, {"params": kept, "weight_decay": 0.0}]


def count_parameters(model: nn.Module) -> dict[str, int]:
    wide = sum(p.numel() for p in model.wide_parameters()) if isinstance(model, WideDeep) else 0
    total = sum(p.numel() for p in model.parameters())
    return {"wide": wide, "deep": total - wide, "total": total}
