"""The ablations of a spec, as the Wide & Deep paper's own table compares them: the same spec with
only its wide part, and with only its deep part (same data, split and seed, so the runs share
their test rows and can stand in one leaderboard)."""

from __future__ import annotations

from studio_core.features.validate import validate
from studio_core.spec.schema import Spec


def ablation_specs(spec: Spec) -> dict[str, Spec]:
    """``{"wide-only": …, "deep-only": …}`` for a spec with both parts; a variant left without
    inputs (its part has no features) is left out; a spec with one part has none."""
    if not (spec.model.wide and spec.model.deep):
        return {}
    out = {}
    for name, wide, deep in (("wide-only", True, False), ("deep-only", False, True)):
        variant = Spec.from_dict(spec.to_dict())
        variant.model.wide, variant.model.deep = wide, deep
        if not [p for p in validate(variant) if p.field.startswith("model")]:
            out[name] = variant
    return out
