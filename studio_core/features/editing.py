"""Spec edits the studio makes: column rows <-> features, and a model summary for the diagram."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from studio_core.features.encoders import embedding_dim_for
from studio_core.features.sizing import periodic_params
from studio_core.spec.schema import (
    NUMERIC_TRANSFORMS,
    TEXT_KINDS,
    CategoricalFeature,
    CrossFeature,
    ModelSpec,
    NumericFeature,
    Spec,
    TextFeature,
)

ROLES = ("numeric", "categorical", "text", "ignored")
TREE_PIECEWISE = "piecewise-tree"  # the editor's name for piecewise with target-aware (tree) bins
NUMERIC_ENCODINGS = (*NUMERIC_TRANSFORMS[:2], TREE_PIECEWISE, *NUMERIC_TRANSFORMS[2:])  # the editor's choices for a numeric column


def editor_encoding(f: NumericFeature) -> str:
    """The editor's encoding of a numeric column: its transform, or piecewise-tree."""
    return TREE_PIECEWISE if f.transform == "piecewise" and f.binning == "tree" else f.transform


def _numeric_dim(f: NumericFeature) -> int:
    """A numeric column's bucket-embedding size: its own, or the rule's for the ids a fitted
    bucketizer gives a continuous column: ``buckets - 1`` boundaries make ``buckets`` buckets,
    plus id 0 for missing (what ``Preprocessor.layout`` sizes the embedding from)."""
    return int(f.embedding_dim) or embedding_dim_for(f.buckets + 1)


def numeric_width(f: NumericFeature, m: ModelSpec) -> int:
    """About how many numbers a numeric column gives the MLP (piecewise: one per bin, about
    ``buckets`` of them; periodic: its embedding; bucketize: none, its bucket is embedded)."""
    return {"standardize": 1, "quantile": 1, "piecewise": int(f.buckets), "periodic": int(m.periodic_dim)}.get(f.transform, 0)


def feature_rows(spec: Spec, columns: list[str], reasons: dict[str, str]) -> list[dict[str, Any]]:
    """One editable row per column (the label excluded)."""
    num = {f.name: f for f in spec.features.numeric}
    cat = {f.name: f for f in spec.features.categorical}
    text = {f.name: f for f in spec.features.text}
    rows = []
    for c in columns:
        if c == spec.data.label:
            continue
        if c in num:
            f = num[c]
            rows.append({"column": c, "role": "numeric", "encoding": editor_encoding(f), "embedding_dim": _numeric_dim(f), "wide": f.wide, "reason": reasons.get(c, "")})
        elif c in cat:
            f = cat[c]
            rows.append({"column": c, "role": "categorical", "encoding": f.encoding, "embedding_dim": f.embedding_dim, "wide": f.wide, "reason": reasons.get(c, "")})
        elif c in text:
            f = text[c]
            rows.append({"column": c, "role": "text", "encoding": f.kind, "embedding_dim": f.embedding_dim, "wide": f.wide, "reason": reasons.get(c, "")})
        else:
            rows.append({"column": c, "role": "ignored", "encoding": "", "embedding_dim": 0, "wide": False, "reason": reasons.get(c, "")})
    return rows


def apply_rows(spec: Spec, rows: list[dict[str, Any]]) -> Spec:
    """A new spec whose features follow the edited rows; settings of unchanged columns are kept."""
    out = copy.deepcopy(spec)
    num = {f.name: f for f in spec.features.numeric}
    cat = {f.name: f for f in spec.features.categorical}
    text = {f.name: f for f in spec.features.text}
    numeric, categorical, texts = [], [], []
    for r in rows:
        name, role = r["column"], r.get("role") or "ignored"
        if role == "numeric":
            f = copy.deepcopy(num.get(name, NumericFeature(name=name, buckets=32, embed=True)))
            encoding = r.get("encoding")
            if encoding in NUMERIC_ENCODINGS and encoding != editor_encoding(f):
                f.transform, f.binning = ("piecewise", "tree") if encoding == TREE_PIECEWISE else (encoding, "quantile")
            f.wide = bool(r.get("wide"))
            if r.get("embedding_dim") and int(r["embedding_dim"]) != _numeric_dim(f):
                f.embedding_dim = int(r["embedding_dim"])
            numeric.append(f)
        elif role == "categorical":
            f = copy.deepcopy(cat.get(name, CategoricalFeature(name=name)))
            f.encoding = r.get("encoding") if r.get("encoding") in ("vocab", "hash") else f.encoding
            f.embedding_dim = int(r.get("embedding_dim") or f.embedding_dim)
            f.wide = bool(r.get("wide"))
            categorical.append(f)
        elif role == "text":  # "text" (words) or "multi" (a set of values) in the encoding cell
            f = copy.deepcopy(text.get(name, TextFeature(name=name, kind=r.get("encoding") if r.get("encoding") in TEXT_KINDS else "text")))
            f.kind = r.get("encoding") if r.get("encoding") in TEXT_KINDS else f.kind
            f.embedding_dim = int(r.get("embedding_dim") or f.embedding_dim)
            f.wide = bool(r.get("wide"))
            texts.append(f)
    out.features.numeric, out.features.categorical, out.features.text = numeric, categorical, texts
    names = {f.name for f in numeric} | {f.name for f in categorical}
    out.features.crosses = [x for x in spec.features.crosses if set(x.columns) <= names]
    return out


def add_cross(spec: Spec, columns: list[str], buckets: int = 4096) -> Spec:
    out = copy.deepcopy(spec)
    if sorted(columns) not in [sorted(x.columns) for x in out.features.crosses]:
        out.features.crosses.append(CrossFeature(columns=list(columns), encoding="hash", hash_buckets=buckets))
    return out


@dataclass(frozen=True)
class ModelSummary:
    wide_inputs: list[str]
    wide_params: int
    embeddings: list[tuple[str, int, int]]  # (field, ids, dim)
    numeric_inputs: int
    mlp: list[int]
    attention: bool
    deep_params: int


def summarize(spec: Spec, distinct: dict[str, int]) -> ModelSummary:
    """Approximate sizes before fitting (ids from distinct counts), for the live diagram."""
    f, m = spec.features, spec.model
    ids = {c.name: (c.hash_buckets if c.encoding == "hash" else distinct.get(c.name, 1)) + 1 for c in f.categorical}
    ids |= {n.name: n.buckets + 1 for n in f.numeric}
    ids |= {t.name: (t.hash_buckets if t.encoding == "hash" else min(t.max_tokens, distinct.get(t.name, t.max_tokens))) + 1 for t in f.text}
    wide = [c.name for c in f.categorical if c.wide] + [f"{n.name} (bucket)" for n in f.numeric if n.wide] + [" x ".join(x.columns) for x in f.crosses]
    wide += [t.name for t in f.text if t.wide]
    wide_params = sum(ids[c.name] for c in f.categorical if c.wide) + sum(ids[n.name] for n in f.numeric if n.wide) + sum(x.hash_buckets + 1 for x in f.crosses)
    wide_params += sum(ids[t.name] for t in f.text if t.wide)
    emb = [(c.name, ids[c.name], c.embedding_dim) for c in f.categorical if c.deep]
    emb += [(n.name, ids[n.name], _numeric_dim(n)) for n in f.numeric if n.transform == "bucketize" or n.embed]
    emb += [(f"{t.name} (tokens, averaged)", ids[t.name], t.embedding_dim) for t in f.text if t.deep]
    n_num = sum(numeric_width(n, m) for n in f.numeric)
    width = (len(emb) + n_num) * m.attention_dim if m.attention else sum(d for _, _, d in emb) + n_num
    deep = sum(i * d for _, i, d in emb) + sum(periodic_params(m) for n in f.numeric if n.transform == "periodic")
    for u in m.hidden_units:
        deep += width * u + u
        width = u
    deep += width + 1
    return ModelSummary(wide if m.wide else [], wide_params if m.wide else 0, emb if m.deep else [], n_num, list(m.hidden_units), m.attention, deep if m.deep else 0)


DIAGRAM_INPUTS = 8  # input names listed per part; the rest are counted ("+ 67 more")


def _listed(names: list[str]) -> str:
    shown = [n.replace(chr(34), "").replace("\\", "") for n in names[:DIAGRAM_INPUTS]]
    return "\\n".join(shown + ([f"+ {len(names) - DIAGRAM_INPUTS} more"] if len(names) > DIAGRAM_INPUTS else []))


def diagram_dot(s: ModelSummary) -> str:
    """Graphviz DOT of the model: wide inputs -> linear; embeddings + numerics -> [attention] -> MLP.
    Each part's inputs are one listed node (at most ``DIAGRAM_INPUTS`` names, then how many
    more), so a 75-column table draws as compactly as a 10-column one."""
    lines = ["digraph G {", "rankdir=LR; node [shape=box, style=rounded, fontsize=10]; nodesep=0.15; ranksep=0.3;"]
    lines.append('out [label="output\\n(sum of logits)", shape=ellipse];')
    if s.wide_inputs:
        lines.append(f'wide [label="wide: sparse linear\\n{len(s.wide_inputs)} fields, {s.wide_params:,} weights"];')
        lines.append('wide -> out;')
        lines.append(f'wide_in [label="{_listed(s.wide_inputs)}", shape=note, fontsize=9]; wide_in -> wide;')
    if s.embeddings or s.numeric_inputs:
        lines.append(f'emb [label="embeddings\\n{len(s.embeddings)} fields + {s.numeric_inputs} numeric inputs"];')
        if s.embeddings:
            lines.append(f'deep_in [label="{_listed([e[0] for e in s.embeddings])}", shape=note, fontsize=9]; deep_in -> emb;')
        prev = "emb"
        if s.attention:
            lines.append('att [label="self-attention"]; emb -> att;')
            prev = "att"
        for i, u in enumerate(s.mlp):
            lines.append(f'h{i} [label="dense {u}"]; {prev} -> h{i};')
            prev = f"h{i}"
        lines.append(f'deep [label="deep logit\\n{s.deep_params:,} parameters"]; {prev} -> deep; deep -> out;')
    lines.append("}")
    return "\n".join(lines)
