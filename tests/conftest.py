"""Shared fixtures: small real data (no mocks) so every test runs DuckDB and torch for real."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest

from studio_core.data.workspace import Workspace
from studio_core.features.suggest import suggest
from studio_core.jobs.hub import reset_hub
from studio_core.spec.schema import DataSpec

ROOT = Path(__file__).resolve().parents[1]
ADULT = ROOT / "sample_data" / "adult.csv"

warnings.filterwarnings("ignore", message="Sparse invariant checks")


def write_synthetic(path: Path, n: int = 1200, seed: int = 0, label: str = "binary") -> Path:
    """A small table whose label depends on colour x size (an interaction) and on x1."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue", "grey"], n)
    size = rng.choice(["S", "M", "L"], n)
    x1 = rng.normal(size=n)
    x2 = rng.exponential(size=n)
    inter = np.where((colour == "red") & (size == "L"), 2.0, 0.0) + np.where((colour == "blue") & (size == "S"), -2.0, 0.0)
    z = inter + 0.8 * x1 + rng.normal(scale=0.5, size=n)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["colour", "size", "x1", "x2", "target"])
        for i in range(n):
            y = int(z[i] > 0.3) if label == "binary" else round(float(z[i]), 4)
            w.writerow([colour[i], size[i], f"{x1[i]:.4f}", "" if i % 17 == 0 else f"{x2[i]:.4f}", y])
    return path


@pytest.fixture(autouse=True)
def _one_run_per_start(monkeypatch):
    """The Train page's ablations switch starts off in tests (each Start trains one run), except
    where a test turns it on; tests/test_app_compare.py covers the default of a real server."""
    monkeypatch.setenv("WDSTUDIO_FIRST_RUN_ABLATIONS", "0")


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The studio in Streamlit's AppTest, on a fresh server (empty caches), runs under tmp_path."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    at = AppTest.from_file(str(ROOT / "app" / "studio.py"), default_timeout=120)
    at.run()
    yield at
    reset_hub()


@pytest.fixture
def synthetic_csv(tmp_path: Path) -> Path:
    return write_synthetic(tmp_path / "synthetic.csv")


@pytest.fixture
def adult_slice(tmp_path: Path) -> Path:
    """The first 3,000 rows of the Adult sample."""
    out = tmp_path / "adult_slice.csv"
    with ADULT.open(encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i > 3000:
                break
            dst.write(line)
    return out


@pytest.fixture
def small_spec(synthetic_csv: Path):
    """A workspace with the synthetic table and its suggested spec, trimmed for speed."""
    ws = Workspace()
    ws.load(synthetic_csv)
    spec = suggest(ws, DataSpec(table="synthetic", label="target")).spec
    spec.train.epochs = 3
    spec.train.batch_size = 128
    spec.model.hidden_units = [32, 16]
    return ws, spec
