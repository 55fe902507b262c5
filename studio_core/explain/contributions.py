"""One row's score split into its wide logit, deep logit and bias, and the wide part's terms.

The wide part is a sum of one weight per active id, so its contribution is exact and readable:
"education = Bachelors: +0.41", "education x occupation = Bachelors x Exec-managerial: +0.22".
The deep part is one number here; its per-column story is the SHAP view (``explain``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from studio_core.data.source import Source
from studio_core.features.preprocess import ColumnCodes
from studio_core.runs.store import Run


@dataclass(frozen=True)
class ScoreParts:
    wide: float
    deep: float
    bias: float
    output: float  # wide + deep + bias (log-odds for binary, standardized value for regression)
    prediction: float  # probability of the positive class, or the value on the label's scale
    wide_terms: pd.DataFrame  # field, value, weight (one row per wide field), largest |weight| first
    tokens: pd.DataFrame | None = None  # text columns: column, token, weight -- each of the row's tokens in the wide part, largest |weight| first


def _value_text(v: object) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "(missing)"
    return str(v)


def score_parts(run: Run, codes: ColumnCodes, raw: pd.DataFrame, i: int = 0, k: int = 0) -> ScoreParts:
    """Wide / deep / bias of row ``i`` of ``codes`` (whose raw feature values are ``raw``); a
    multiclass run's parts of class ``k``'s logit, and its probability as the prediction."""
    prep, model = run.preprocessor, run.model
    columns = prep.input_columns()
    wide, cat, num = prep.assemble(codes.mix(columns, np.full((1, len(columns)), i, np.int64)))
    w, c, x = (torch.from_numpy(a) for a in (wide, cat, num))
    model.eval()
    with torch.no_grad():
        wide_all, deep_all = model.wide_logit(w)[0], model.deep_logit(c, x)[0]
    multi = prep.task == "multiclass"
    wide_logit = float(wide_all[k] if multi else wide_all)
    deep_logit = float(deep_all[k] if multi else deep_all)
    bias = float(model.bias.detach()[k if multi else 0])
    output = wide_logit + deep_logit + bias
    if multi:  # the class's probability needs every class's logit
        prediction = float(prep.decode_label((wide_all + deep_all + model.bias.detach()).double().numpy()[None, :])[0, k])
    else:
        prediction = float(prep.decode_label(np.array([output]))[0])
    rows, token_rows = [], []
    if model.use_wide and wide.shape[1]:
        weights = model.wide.weight.detach().numpy()[:, k]
        f = prep.features
        offsets = [o for o in prep.wide_offsets() if not o[0].startswith("txt:")]
        for (key, start, _), gid in zip(offsets, wide[0]):
            local = int(gid - start)
            enc = prep.encoders_[key]
            if key.startswith("cat:"):
                col = key[4:]
                field = col
                value = _value_text(raw[col].iloc[i]) + (" (unseen)" if local == 0 and _value_text(raw[col].iloc[i]) != "(missing)" else "")
            elif key.startswith("bkt:"):
                col = key[4:]
                field, value = f"{col} (bucket)", f"{_value_text(raw[col].iloc[i])} in {enc.label(local)}"
            else:
                cross = f.crosses[int(key.split(":")[1])]
                field = " x ".join(cross.columns)
                parts = [(prep.encoders_[f"bkt:{c}"].label(int(codes.buckets[c][i])) if c in codes.buckets else _value_text(raw[c].iloc[i]))
                         for c in cross.columns]
                value = " x ".join(parts) + (" (unseen combination)" if local == 0 else "")
            rows.append((field, value, float(weights[gid])))
        at = len(offsets)
        for t in (t for t in f.text if t.wide):
            enc, start = prep.encoders_[f"txt:{t.name}"], next(s for k, s, _ in prep.wide_offsets() if k == f"txt:{t.name}")
            ids = wide[0, at : at + int(t.max_length)]
            ids = ids[ids != run.model.wide_pad]
            at += int(t.max_length)
            token_rows += [(t.name, enc.label(int(g - start)), float(weights[g])) for g in ids]
            top = sorted(((enc.label(int(g - start)), float(weights[g])) for g in ids), key=lambda x: -abs(x[1]))[:3]
            shown = ", ".join(f"{tok} {w:+.2f}" for tok, w in top)
            rows.append((t.name, f"{len(ids)} tokens" + (f" ({shown}, ...)" if len(ids) > 3 else f" ({shown})" if ids.size else ""),
                         float(weights[ids].sum())))
    terms = pd.DataFrame(rows, columns=["field", "value", "weight"])
    tokens = pd.DataFrame(token_rows, columns=["column", "token", "weight"])
    if len(tokens):
        tokens = tokens.iloc[np.argsort(-tokens.weight.abs().to_numpy(), kind="stable")].reset_index(drop=True)
    if len(terms):
        terms = terms.iloc[np.argsort(-terms.weight.abs().to_numpy(), kind="stable")].reset_index(drop=True)
    return ScoreParts(wide_logit, deep_logit, bias, output, prediction, terms, tokens)


def row_parts(run: Run, source: Source, i: int = 0) -> ScoreParts:
    """``score_parts`` for row ``i`` of a DuckDB relation of raw rows."""
    from studio_core.explain.shap_values import encode_rows

    return score_parts(run, *encode_rows(run, source), i)
