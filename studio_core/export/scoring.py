"""Open a bundle zip and score raw rows with it -- onnxruntime only, no torch.

This module and everything it imports stay free of torch, so a serving machine needs no
PyTorch (a test runs ``wdstudio score`` where importing torch fails).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio_core.common.errors import StudioError
from studio_core.common.files import check_archive, check_regular
from studio_core.data.source import Source
from studio_core.data.workspace import Table, Workspace
from studio_core.export.onnx_run import run_model, run_raw, session
from studio_core.features.input_columns import check_input_columns
from studio_core.features.preprocess import Preprocessor

FORMAT = "wdstudio-bundle"
FORMAT_VERSION = 1
REQUIRED_FILES = ("bundle.json", "preprocess.json", "spec.json", "metrics.json", "model.onnx")


@dataclass
class Bundle:
    """An opened bundle: its manifest, preprocessing and graph bytes."""

    path: Path
    manifest: dict[str, Any]
    preprocessor: Preprocessor
    metrics: dict[str, Any]
    graphs: dict[str, bytes] = field(default_factory=dict)

    def graph_name(self, int8: bool = False) -> str:
        g = self.manifest["graphs"]
        if int8:
            name = g.get("raw_int8") if self.manifest["score_with"] == "raw.onnx" else g.get("model_int8")
            if not name:
                raise StudioError(f"{self.path.name} has no INT8 graph; export it with --int8 or score without --int8")
            return name
        return self.manifest["score_with"]

    def predict(self, table: Table, int8: bool = False, threads: int | None = None, allow_missing: bool = False) -> tuple[np.ndarray, list[str]]:
        """Predictions for every row of ``table`` in order, and warnings about its columns
        (renamed or too many missing feature columns are refused unless ``allow_missing``)."""
        prep = self.preprocessor
        warnings = check_input_columns(prep, table.columns, allow_missing)
        name = self.graph_name(int8)
        try:
            sess = session(self.graphs[name], threads)
        except Exception as exc:
            raise StudioError(f"{self.path.name}: {name} cannot be loaded by onnxruntime ({str(exc).splitlines()[0][:160]}); export the run again") from None
        available = set(table.columns)
        if name.startswith("raw"):
            _, preds = run_raw(sess, table.con, prep, table.ref, available)
            return preds.astype(np.float64), warnings
        enc = prep.transform(Source(table.con, table.ref), with_label=False, available=available)
        logits = run_model(sess, {"wide": enc.wide, "cat": enc.cat, "num": enc.num})
        return prep.decode_label(logits), warnings


def load_bundle(path: str | Path) -> Bundle:
    """Open and check a bundle zip written by ``export_bundle``."""
    path = Path(path)
    fix = "pass a zip written by `wdstudio export`"
    if not path.exists():
        raise StudioError(f"{path}: no such bundle file; {fix}")
    check_regular(path, "bundle")
    if not zipfile.is_zipfile(path):
        raise StudioError(f"{path.name} is not a zip file; {fix}")
    try:
        with zipfile.ZipFile(path) as z:
            check_archive(z, path.name, small=("bundle.json", "preprocess.json", "metrics.json"))
            names = set(z.namelist())
            missing = [f for f in REQUIRED_FILES if f not in names]
            if missing:
                raise StudioError(f"{path.name} is not a complete bundle (missing {', '.join(missing)}); {fix}")
            manifest = json.loads(z.read("bundle.json").decode("utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise StudioError(f"{path.name}: bundle.json is not a Wide & Deep Studio manifest; {fix}")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise StudioError(f"{path.name}: bundle format version {manifest.get('format_version')!r} is not supported "
                                  f"(this engine reads version {FORMAT_VERSION}); export the run again with this version")
            wanted = [g for g in manifest.get("graphs", {}).values() if g]
            absent = [g for g in wanted if g not in names]
            if absent or manifest.get("score_with") not in wanted:
                raise StudioError(f"{path.name}: graph file(s) {', '.join(absent) or manifest.get('score_with')} missing from the bundle; {fix}")
            prep = Preprocessor.from_json(z.read("preprocess.json").decode("utf-8"))
            metrics = json.loads(z.read("metrics.json").decode("utf-8"))
            graphs = {g: z.read(g) for g in wanted}
    except StudioError:
        raise
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StudioError(f"{path.name}: the bundle is damaged ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); {fix}") from None
    return Bundle(path, manifest, prep, metrics, graphs)


def score_file(bundle: Bundle | str | Path, data_path: str | Path, int8: bool = False, allow_missing: bool = False) -> tuple[np.ndarray, list[str]]:
    """Load a CSV/Parquet file into a fresh workspace and score every row with the bundle."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    ws = Workspace()
    loaded = ws.load(data_path, name="input")
    preds, warnings = b.predict(ws.table(loaded.table), int8=int8, allow_missing=allow_missing)
    return preds, list(loaded.warnings) + warnings
