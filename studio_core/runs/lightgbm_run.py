"""A LightGBM baseline loaded to score rows, so ``predict`` and ``evaluate`` take it like a
network run: a challenger is useful only if it can score the same files.

The rows are read exactly as at training (``lightgbm_baseline._frame``'s expressions: numbers
through ``number_expr``, categories as text), the categories handed to the booster as pandas
categories -- LightGBM maps them onto its training categories stored in the model file, so an
unseen value is missing, as the network's id 0.  Outputs follow the network run's conventions:
logits (binary), per-class logits (multiclass) or values (regression).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studio_core.common.errors import StudioError
from studio_core.common.files import read_text
from studio_core.data.source import Source
from studio_core.data.sqlutil import number_expr, qi
from studio_core.data.workspace import Table
from studio_core.features.input_columns import check_input_columns
from studio_core.features.preprocess import Preprocessor
from studio_core.runs.evaluation import Scored, read_test_scores
from studio_core.runs.folder import run_record
from studio_core.spec.schema import Spec

LIGHTGBM_MODEL = "model.lgb.txt"  # LightGBM's own text format (no pickle); runs.store reads the name from here


@dataclass
class LightGBMRun:
    """A LightGBM baseline's spec, label mapping (its fitted preprocessing), booster and metrics."""

    path: Path
    spec: Spec
    preprocessor: Preprocessor
    booster: Any
    metrics: dict[str, Any]

    @property
    def columns(self) -> tuple[list[str], list[str]]:
        """(numeric, categorical) feature columns, in the booster's order."""
        f = self.spec.features
        return [n.name for n in f.numeric], [c.name for c in f.categorical]

    def frame(self, source: Source, available: set[str] | None = None, with_label: bool = False) -> pd.DataFrame:
        """The booster's input rows of ``source`` in their order (a column absent from
        ``available`` is missing), with the label as ``__y`` when ``with_label``."""
        prep = self.preprocessor
        numeric, categorical = self.columns
        have = (lambda c: available is None or c in available)  # noqa: E731
        cols = [f"{number_expr(c) if have(c) else 'CAST(NULL AS DOUBLE)'} AS {qi(c)}" for c in numeric]
        cols += [f"{prep._text(c) if have(c) else 'CAST(NULL AS VARCHAR)'} AS {qi(c)}" for c in categorical]
        if with_label:
            cols.append(f"({prep.label_expr()}) AS __y")
        where = f" WHERE {prep.label_filter()}" if with_label else ""
        df = source.con.sql(f"SELECT {', '.join(cols)} FROM {source.relation}{where}").df()
        for c in categorical:  # LightGBM re-maps these onto its training categories (unseen -> missing)
            df[c] = pd.Categorical(df[c].astype(object).where(df[c].notna(), None))
        return df

    def output(self, df: pd.DataFrame) -> np.ndarray:
        """Logits (binary), per-class logits (multiclass) or values (regression) of the rows."""
        numeric, categorical = self.columns
        task = self.preprocessor.task
        if not len(df):
            return np.zeros((0, self.preprocessor.n_outputs)) if task == "multiclass" else np.zeros(0)
        return np.asarray(self.booster.predict(df[numeric + categorical], raw_score=task != "regression"), np.float64)

    def test_scores(self) -> Scored | None:
        """The test rows' labels and outputs stored when the baseline was trained."""
        return read_test_scores(self.path, self.preprocessor.task, "train the baseline again")

    def score_source(self, source: Source, available: set[str] | None = None) -> Scored:
        """Labelled rows scored (what ``evaluate`` reports)."""
        df = self.frame(source, available, with_label=True)
        return Scored(self.preprocessor.task, df["__y"].to_numpy(np.float64), self.output(df))

    def predict(self, table: Table, allow_missing: bool = False) -> tuple[np.ndarray, list[str]]:
        """Predictions for every row of ``table`` in order (as ``Run.predict``), and warnings."""
        warnings = check_input_columns(self.preprocessor, table.columns, allow_missing)
        raw = self.output(self.frame(Source(table.con, table.ref), set(table.columns)))
        if self.preprocessor.task == "regression":
            return raw, warnings
        return self.preprocessor.decode_label(raw), warnings


def load_lightgbm(path: str | Path) -> LightGBMRun:
    """Load a LightGBM baseline's run directory (refused, saying what to do, when it predates
    the stored preprocessing or is damaged)."""
    import lightgbm as lgb

    path = Path(path)
    spec, metrics = run_record(path)
    if not (path / "preprocess.json").is_file():
        raise StudioError(f"{path} is a LightGBM baseline from before baselines stored their label mapping (preprocess.json); "
                          "train it again with `wdstudio baseline --kind lightgbm` to predict with it")
    try:
        prep = Preprocessor.from_json(read_text(path / "preprocess.json", "preprocess.json"))
        booster = lgb.Booster(model_str=read_text(path / LIGHTGBM_MODEL, LIGHTGBM_MODEL))
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
        raise StudioError(f"{path}: the LightGBM baseline is damaged ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}); "
                          "train it again") from None
    return LightGBMRun(path, spec, prep, booster, metrics)
