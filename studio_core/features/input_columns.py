"""Whether a file to be scored has the feature columns a model was trained on.

A missing feature column is scored as all-missing values, which is right for a column that is
truly unknown and wrong for one that was merely renamed: ``marital-status`` for
``marital_status`` cost 0.05 AUC while the CLI exited 0 with a warning.  So scoring refuses
when a missing column has a near namesake in the file (a rename, almost surely), or when more
than ``MAX_MISSING_SHARE`` of the features are missing, unless the caller allows it.  Torch-free:
the bundle scorer uses it too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from studio_core.common.errors import StudioError
from studio_core.features.preprocess import Preprocessor

MAX_MISSING_SHARE = 0.2  # above this share of missing features the scores are not the model's


def _plain(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def close_name(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate that is ``name`` up to case and punctuation, else the closest by spelling
    (difflib ratio >= 0.8), else None."""
    candidates = list(candidates)
    same = [c for c in candidates if _plain(c) == _plain(name)]
    if same:
        return same[0]
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=1, cutoff=0.8)
    return next((c for c in candidates if c.lower() == close[0]), None) if close else None


def check_input_columns(prep: Preprocessor, columns: Iterable[str], allow_missing: bool = False) -> list[str]:
    """Warnings (none, or one line) for feature columns missing from ``columns``; raises
    ``StudioError`` instead when the missing columns look renamed or are too many, unless
    ``allow_missing``.  Missing columns are then scored as missing values."""
    columns = set(columns)
    wanted = [f.name for f in prep.features.categorical] + [f.name for f in prep.features.numeric]
    missing = [c for c in wanted if c not in columns]
    if not missing:
        return []
    spare = sorted(columns - set(wanted) - {prep.label})
    hints = {c: close_name(c, spare) for c in missing}
    listed = ", ".join(c + (f" (did you mean {hints[c]}?)" if hints[c] else "") for c in missing)
    share = len(missing) / max(len(wanted), 1)
    if not allow_missing and (share > MAX_MISSING_SHARE or any(hints.values())):
        why = "some look renamed" if any(hints.values()) else f"more than {MAX_MISSING_SHARE:.0%} of the features"
        raise StudioError(f"{len(missing)} of the model's {len(wanted)} feature columns are missing from the input ({why}): {listed}. "
                          "Rename them in the file to the trained names, or pass --allow-missing to score them as missing values")
    return [f"column(s) missing from the input, treated as missing values: {listed}"]
