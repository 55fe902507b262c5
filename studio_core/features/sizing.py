"""How big a model is before it exists: parameters and training memory from the spec (an upper
bound, before fitting: validation refuses what is certainly too big) or from the fitted layout
(exact, checked before any weight is allocated), against a limit.

A Streamlit server builds models in its own process, so a spec with three hidden layers of
65,536 units (8.6 billion parameters) or 154 billion embedding parameters must be refused by
arithmetic, never by trying.  The limit is ``WDSTUDIO_MAX_PARAMS`` (the studio sets its own,
see the README); training holds about 16 bytes a parameter (weights, gradients and two
optimiser moments, float32).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from studio_core.common.errors import Problem, StudioError
from studio_core.features.encoders import embedding_dim_for
from studio_core.features.preprocess import Layout
from studio_core.spec.schema import SCALED_TRANSFORMS, ModelSpec, Spec

TRAINING_BYTES_PER_PARAM = 16
DEFAULT_MAX_PARAMS = 200_000_000
MAX_CROSSES = 200


def max_params() -> int:
    """The largest model (in parameters) this process will build: ``WDSTUDIO_MAX_PARAMS``."""
    try:
        return int(float(os.environ.get("WDSTUDIO_MAX_PARAMS", DEFAULT_MAX_PARAMS)))
    except ValueError:
        return DEFAULT_MAX_PARAMS


def periodic_params(model: ModelSpec) -> int:
    """Parameters of one column's periodic embedding: frequencies, per-column linear map, bias."""
    p_dim, k = (model.attention_dim if model.attention else model.periodic_dim), model.periodic_frequencies
    return k + 2 * k * p_dim + p_dim


def deep_params(embeddings: Sequence[tuple[int, int]], n_numeric: int, model: ModelSpec, n_periodic: int = 0) -> int:
    """Parameters of the deep part: embeddings ``(ids, dim)``, periodic embeddings of
    ``n_periodic`` of the ``n_numeric`` numeric inputs, optional attention, the MLP."""
    if not model.deep:
        return 0
    total = sum(n * d for n, d in embeddings)
    p_dim = model.attention_dim if model.attention else model.periodic_dim
    total += n_periodic * periodic_params(model)
    if model.attention:
        d = model.attention_dim
        fields = len(embeddings) + n_numeric
        total += sum(e * d for _, e in embeddings) + (n_numeric - n_periodic) * d  # field projections, numeric vectors
        total += model.attention_layers * (4 * d * d + 4 * d + 2 * d)  # in/out projections, biases, layer norm
        width = fields * d
    else:
        width = sum(e for _, e in embeddings) + n_numeric - n_periodic + n_periodic * p_dim
    k = max(1, model.ensemble)
    total += k * width if k > 1 else 0  # the members' input scales
    for units in model.hidden_units:
        total += width * units + units + (2 * units if model.batch_norm else 0)
        width = units
    return total + k * (width + 1)  # one output head per member


def spec_params(spec: Spec, vocabulary: int | None = None) -> int:
    """The model's parameters from the spec alone, with every vocabulary of ``vocabulary`` ids
    (default 2, the least a fitted vocabulary has: so a lower bound, exact for hashed columns
    and the MLP; ``features.max_vocabulary + 1`` gives the upper bound)."""
    f, m = spec.features, spec.model
    cap = 2 if vocabulary is None else int(vocabulary)
    ids = {c.name: (int(c.hash_buckets) + 1 if c.encoding == "hash" else cap) for c in f.categorical}
    wide = sum(ids[c.name] for c in f.categorical if c.wide) + sum(int(n.buckets) + 1 for n in f.numeric if n.wide)
    wide += sum(int(x.hash_buckets) + 1 if x.encoding == "hash" else cap for x in f.crosses)
    embeddings = [(ids[c.name], int(c.embedding_dim)) for c in f.categorical if c.deep]
    embeddings += [(int(n.buckets) + 1, int(n.embedding_dim) or embedding_dim_for(int(n.buckets) + 1))
                   for n in f.numeric if n.transform == "bucketize" or n.embed]
    text_ids = {t.name: (int(t.hash_buckets) + 1 if t.encoding == "hash" else min(cap, int(t.max_tokens) + 1)) for t in f.text}
    wide += sum(text_ids[t.name] for t in f.text if t.wide) + (1 if any(t.wide for t in f.text) else 0)  # + the padding row
    embeddings += [(text_ids[t.name], int(t.embedding_dim)) for t in f.text if t.deep]  # averaged: one vector each, as an embedding
    # one value each at least (a missing flag may add one, a piecewise column one per bin)
    n_numeric = sum(1 for n in f.numeric if n.transform in SCALED_TRANSFORMS)
    n_periodic = sum(1 for n in f.numeric if n.transform == "periodic")
    return (wide if m.wide else 0) + deep_params(embeddings, n_numeric, m, n_periodic) + 1


def size_text(params: int) -> str:
    return (f"{params:,} parameters ({params * 4 / 2**30:.2f} GiB of weights, about "
            f"{params * TRAINING_BYTES_PER_PARAM / 2**30:.1f} GiB while training)")


def size_problems(spec: Spec, limit: int | None = None) -> list[Problem]:
    """Problems of a spec that would build a model over the limit, or too many crosses."""
    limit = max_params() if limit is None else limit
    out = []
    if len(spec.features.crosses) > MAX_CROSSES:
        out.append(Problem("features.crosses", f"{len(spec.features.crosses):,} crosses", f"keep at most {MAX_CROSSES}"))
    params = spec_params(spec)  # a lower bound: the exact size is checked again once the vocabularies are fitted
    if params > limit:
        out.append(Problem("model", f"the model would have at least {size_text(params)}, over this server's limit of {limit:,} (WDSTUDIO_MAX_PARAMS)",
                           "use fewer or smaller hidden layers, smaller embeddings, fewer hash buckets or a lower features.max_vocabulary"))
    return out


def layout_params(layout: Layout, model: ModelSpec) -> int:
    """The exact parameter count of the model a fitted layout builds."""
    wide = layout.wide_dim if model.wide else 0
    embeddings = list(zip(layout.deep_cardinalities, layout.deep_embedding_dims)) + list(zip(layout.text_cardinalities, layout.text_embedding_dims))
    return wide + deep_params(embeddings, len(layout.numeric_inputs), model, len(layout.periodic_inputs)) + 1


def check_layout(layout: Layout, model: ModelSpec, limit: int | None = None) -> int:
    """The fitted model's parameter count, or a StudioError when it is over the limit -- raised
    before any weight is allocated."""
    limit = max_params() if limit is None else limit
    params = layout_params(layout, model)
    if params > limit:
        raise StudioError(f"the fitted model would have {size_text(params)}, over this server's limit of {limit:,} parameters "
                          "(WDSTUDIO_MAX_PARAMS); use fewer or smaller hidden layers, smaller embeddings or a lower features.max_vocabulary")
    return params
