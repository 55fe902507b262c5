"""Shapley values of a Wide & Deep model, computed the way the model's shape allows.

SHAP with an independent masker explains ``v(S) = mean_b f(x_S, b_rest)`` over background rows
``b``.  The model is ``wide + deep + bias`` and Shapley values are linear in the function, so the
two parts are explained apart and added:

* **Wide part, exactly.**  Each wide term (a column's value or a cross of 2-3 columns) depends on
  its own columns only, so its Shapley values are an enumeration of the subsets of those few
  columns -- closed form, no sampling (a single-column term gives ``w(x) - mean_b w(b)``).
* **Deep part, sampled** with antithetic permutations, the estimator of
  ``shap.PermutationExplainer``: walk a random column order switching columns from the
  background to the row, then back in the same order, crediting each step's change.  For an MLP
  the first linear layer is additive over columns, so each column's share of it is computed once
  per row and per background row, and a walk's states are a cumulative sum of those shares: one
  matrix product per state for the rest of the network instead of re-embedding every masked row
  (an attention model, whose first layer mixes columns, is sampled through ``shap`` instead).

Each row's permutations come from its own seeded generator, so a row's values do not depend on
the chunking or on other threads.  Values are additive: the base value plus the sum over columns
is the model's output for the row, up to float32 rounding.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from itertools import combinations

import numpy as np
import torch

from studio_core.common.errors import Cancelled
from studio_core.features.preprocess import ColumnCodes, Preprocessor
from studio_core.spec.schema import SCALED_TRANSFORMS

_WALK_FLOATS = 8_000_000  # floats of one batch of walk states (~32 MB; the batch's copies about 4x that)


def default_permutations(n_columns: int) -> int:
    """Permutations per row: 10 for a narrow table (shap's ``10 * (2m + 1)`` evaluations), fewer
    as columns grow (each walk already evaluates ``2m`` coalitions), never below 3."""
    return max(3, min(10, 1200 // (2 * max(n_columns, 1) + 1)))


def wide_terms(prep: Preprocessor) -> list[tuple[str, ...]]:
    """The input columns of every wide term, in the order of the model's wide ids."""
    f = prep.features
    return ([(c.name,) for c in f.categorical if c.wide] + [(x.name,) for x in f.numeric if x.wide]
            + [tuple(x.columns) for x in f.crosses])


def wide_values(prep: Preprocessor, model: torch.nn.Module, codes_r: ColumnCodes, codes_b: ColumnCodes,
                columns: list[str], k: int = 0) -> np.ndarray:
    """(n, m) exact Shapley values of the wide logit (multiclass: of class ``k``) per input column."""
    n, out = codes_r.n, np.zeros((codes_r.n, len(columns)))
    if not getattr(model, "use_wide", False) or n == 0:
        return out
    weights = model.wide.weight.detach().double().numpy()[:, k]
    wide_r, _, _ = prep.assemble(codes_r)
    wide_b, _, _ = prep.assemble(codes_b)
    offsets = [start for _, start, _ in prep.wide_offsets()]
    n_single = len(wide_terms(prep)) - len(prep.features.crosses)
    at = {c: j for j, c in enumerate(columns)}
    for t, cols in enumerate(wide_terms(prep)):
        on, off = weights[wide_r[:, t]], weights[wide_b[:, t]].mean()
        if t < n_single:
            out[:, at[cols[0]]] += on - off
            continue
        encoder, k = prep.encoders_[f"cross:{t - n_single}"], len(cols)
        part = [(codes_r.buckets[c] if c in codes_r.buckets else codes_r.text_codes[c],
                 codes_b.buckets[c] if c in codes_b.buckets else codes_b.text_codes[c]) for c in cols]
        value = {(): np.full(n, off), tuple(range(k)): on}
        for size in range(1, k):
            for subset in combinations(range(k), size):  # these columns from the row, the rest from b
                mixed = [np.broadcast_to(r[:, None] if i in subset else b[None, :], (n, codes_b.n)).reshape(-1)
                         for i, (r, b) in enumerate(part)]
                ids = encoder.transform(mixed) + offsets[t]
                value[subset] = weights[ids].reshape(n, codes_b.n).mean(axis=1)
        for i in range(k):
            for size in range(k):
                w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                for subset in combinations([x for x in range(k) if x != i], size):
                    out[:, at[cols[i]]] += w * (value[tuple(sorted(subset + (i,)))] - value[subset])
    start = len(wide_terms(prep))
    for t in (t for t in prep.features.text if t.wide):  # a text term: the sum of its tokens' weights, one column's alone
        cols = slice(start, start + int(t.max_length))
        out[:, at[t.name]] += weights[wide_r[:, cols]].sum(axis=1) - weights[wide_b[:, cols]].sum(axis=1).mean()
        start += int(t.max_length)
    return out


def fast_deep(model: torch.nn.Module) -> bool:
    """Whether the deep part's first layer is a linear map of the concatenated column inputs
    (an ensemble's members scale that input first: the general path explains it)."""
    return (bool(getattr(model, "use_deep", False)) and model.attention is None and getattr(model, "members", 1) == 1
            and isinstance(model.mlp[0], torch.nn.Linear))


def _deep_slices(prep: Preprocessor, model: torch.nn.Module, codes: ColumnCodes) -> dict[str, list]:
    """Input column -> [(kind, key, first-layer column slice)] of the MLP's input: embeddings,
    then the plain numeric inputs, then the periodic embeddings (``WideDeep.deep_logit``'s order).
    ``key`` is the embedding index, or (column, its value column, periodic index or None)."""
    f, out, start = prep.features, {}, 0
    deep_ids = [c.name for c in f.categorical if c.deep] + [x.name for x in f.numeric if x.transform == "bucketize" or x.embed]
    for k, name in enumerate(deep_ids):
        d = model.embeddings[k].embedding_dim
        out.setdefault(name, []).append(("emb", k, slice(start, start + d)))
        start += d
    for k, t in enumerate(t for t in f.text if t.deep):  # averaged token embeddings follow the embeddings
        d = model.bags.dims[k]
        out.setdefault(t.name, []).append(("bag", k, slice(start, start + d)))
        start += d
    owners = [(x.name, j) for x in f.numeric if x.transform in SCALED_TRANSFORMS for j in range(codes.scaled[x.name].shape[1])]
    periodic = list(model.periodic_index) if getattr(model, "periodic", None) is not None else []
    plain = [i for i in range(len(owners)) if i not in set(periodic)]
    for i in plain:
        name, j = owners[i]
        out.setdefault(name, []).append(("num", (name, j, None), slice(start, start + 1)))
        start += 1
    for k, i in enumerate(periodic):
        name, j = owners[i]
        d = model.periodic.weight.shape[2]
        out.setdefault(name, []).append(("num", (name, j, k), slice(start, start + d)))
        start += d
    return out


def _first_layer_shares(prep: Preprocessor, model: torch.nn.Module, codes: ColumnCodes, columns: list[str]) -> torch.Tensor:
    """(n, m_deep, units): each deep column's share of the first linear layer (no bias)."""
    weight = model.mlp[0].weight.detach()
    slices = _deep_slices(prep, model, codes)
    shares = []
    for name in columns:
        total = torch.zeros(codes.n, weight.shape[0])
        for kind, key, cols in slices[name]:
            if kind == "bag":
                ids = prep.encoders_[f"txt:{name}"].deep_ids(codes.tokens[name])
                x = model.bags.one(key, torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)))
            elif kind == "emb":
                ids = torch.from_numpy(np.asarray(codes.buckets[name] if name in codes.buckets and name not in codes.cat_ids
                                                  else codes.cat_ids[name], dtype=np.int64))
                x = model.embeddings[key](ids)
            else:
                col, j, k = key
                x = torch.from_numpy(np.ascontiguousarray(codes.scaled[col][:, j:j + 1], dtype=np.float32))
                if k is not None:
                    x = model.periodic.one(k, x[:, 0])
            total += x @ weight[:, cols].T
        shares.append(total)
    return torch.stack(shares, dim=1) if shares else torch.zeros(codes.n, 0, weight.shape[0])


def deep_columns(prep: Preprocessor, model: torch.nn.Module, codes: ColumnCodes) -> list[str]:
    return sorted(_deep_slices(prep, model, codes)) if getattr(model, "use_deep", False) else []


def deep_values(prep: Preprocessor, model: torch.nn.Module, codes_r: ColumnCodes, codes_b: ColumnCodes, columns: list[str],
                permutations: int, seed: int = 0, progress: Callable[[int, int], None] | None = None,
                stop_event: threading.Event | None = None, row_offset: int = 0, k: int = 0) -> np.ndarray:
    """(n, m) sampled Shapley values of the deep logit (multiclass: of class ``k``) per input
    column (fast path; see ``fast_deep``).  Row ``i`` draws its permutations from
    ``default_rng([seed, row_offset + i])``."""
    n, out = codes_r.n, np.zeros((codes_r.n, len(columns)))
    used = deep_columns(prep, model, codes_r)
    if not used or n == 0:
        return out
    where = [columns.index(c) for c in used]
    m, nb = len(used), codes_b.n
    layers = model.mlp[1:]

    def rest(h: torch.Tensor) -> torch.Tensor:  # the network after its first layer, output k
        return layers(h)[..., k]

    with torch.inference_mode():
        share_b = _first_layer_shares(prep, model, codes_b, used)  # (nb, m, u)
        share_r = _first_layer_shares(prep, model, codes_r, used)  # (n, m, u)
        off = share_b.sum(dim=1) + model.mlp[0].bias.detach()  # every column from the background
        g_off = float(rest(off).double().mean())
        per_batch = max(1, _WALK_FLOATS // max(1, 2 * m * nb * share_b.shape[2]))
        for i in range(n):
            if stop_event is not None and stop_event.is_set():
                raise Cancelled()
            delta = share_r[i][None] - share_b  # (nb, m, u): switching each column to the row's value
            on = off + delta.sum(dim=1)
            g_on = float(rest(on).double().mean())
            if math.factorial(m) <= permutations:  # few columns: every order once, exact values
                orders = [np.array(o) for o in itertools.permutations(range(m))]
            else:
                rng = np.random.default_rng([seed, row_offset + i])
                orders = [rng.permutation(m) for _ in range(permutations)]
            if m == 1:  # one column: it gets the whole change
                out[i, where] = g_on - g_off
                continue
            phi = np.zeros(m)
            for b0 in range(0, len(orders), per_batch):
                batch = np.stack(orders[b0 : b0 + per_batch])  # (p, m)
                steps = delta[:, torch.from_numpy(batch)].cumsum(dim=2)  # (nb, p, m, u)
                forward = off[:, None, None] + steps[:, :, :-1]  # after switching on the first k+1 columns
                backward = on[:, None, None] - steps[:, :, :-1]  # after switching them off again
                states = torch.stack([forward, backward], dim=0)  # (2, nb, p, m-1, u)
                g = rest(states.reshape(-1, states.shape[-1])).double().reshape(2, nb, len(batch), m - 1).mean(dim=1).numpy()
                g_fwd = np.concatenate([np.full((len(batch), 1), g_off), g[0], np.full((len(batch), 1), g_on)], axis=1)
                g_bwd = np.concatenate([np.full((len(batch), 1), g_on), g[1], np.full((len(batch), 1), g_off)], axis=1)
                credit = np.diff(g_fwd, axis=1) - np.diff(g_bwd, axis=1)  # (p, m): step k credits column order[k]
                np.add.at(phi, batch.reshape(-1), credit.reshape(-1))
            out[i, where] = phi / (2 * len(orders))
            if progress is not None:
                progress(i + 1, n)
    return out


def seconds_per_row(prep: Preprocessor, model: torch.nn.Module, n_columns: int, background: int, permutations: int) -> float:
    """A measured estimate of one row's cost: the network evaluated on one batch of walk states
    of this size (zeros: the cost does not depend on the values), scaled to the row's walks."""
    if not fast_deep(model):
        return float("nan")
    units = model.mlp[0].out_features
    batch = max(1, min(permutations, _WALK_FLOATS // max(1, 2 * n_columns * background * units)))
    x = torch.zeros(2 * max(n_columns - 1, 1) * background * batch, units)
    rest = model.mlp[1:]
    with torch.inference_mode():
        rest(x[:256])
        t0 = time.perf_counter()
        rest(x)
        took = time.perf_counter() - t0
    return took * permutations / batch * 1.3 + 0.002  # + the cumulative sums and the bookkeeping
