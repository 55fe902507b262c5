"""Readable names for the ids of a wide cross, so Inspect shows
``education=Masters × occupation=Exec-managerial`` instead of ``#625``.

A vocabulary cross names each id by its combination; a hashed cross names each bucket by its
most frequent training combination (other combinations may share the bucket, which the name
says).  Numeric components are named by their quantile bucket's interval.  Only the most
frequent ``LABELS_KEPT`` ids are named, which bounds ``preprocess.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

LABELS_KEPT = 5_000


def combination_labels(columns: Sequence[str], rows: Sequence[tuple], codes: Sequence[np.ndarray], ids: np.ndarray,
                       describe: Callable[[str, Any, int], str], limit: int = LABELS_KEPT) -> dict[int, str]:
    """``rows``: (component values..., count) of training combinations; ``codes``: per column,
    each row's component code (a numeric column's bucket); ``ids``: each row's cross id.
    Returns id -> "a=x × b=y" of the id's most frequent combination (id 0 excluded); only the
    named rows are described."""
    order = np.argsort(-np.asarray([r[-1] for r in rows], dtype=np.int64), kind="stable")
    out: dict[int, str] = {}
    for i in order:
        k = int(ids[i])
        if k == 0 or k in out:
            continue
        out[k] = " × ".join(f"{c}={describe(c, rows[i][j], int(codes[j][i]))}" for j, c in enumerate(columns))
        if len(out) >= limit:
            break
    return out
