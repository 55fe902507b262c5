"""The prediction columns written for scored rows, the same for a run, a bundle, the CLI and the Predict page.

Binary: ``prediction`` = the positive class's probability; regression: the value.  Multiclass:
``prediction`` = the most likely class as the label's text, then one ``p_<class>`` column per
class in the run's stored class order, each row summing to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def prediction_columns(task: str, predictions: np.ndarray, classes: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Column name -> values, in output order."""
    p = np.asarray(predictions, dtype=np.float64)
    if task != "multiclass":
        return {"prediction": p}
    p = p.reshape(len(p), len(classes))
    out: dict[str, np.ndarray] = {"prediction": np.asarray(list(classes), dtype=object)[p.argmax(axis=1)] if len(p) else np.zeros(0, object)}
    for k, c in enumerate(classes):
        out[f"p_{c}"] = p[:, k]
    return out
