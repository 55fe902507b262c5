"""``wdstudio score`` runs where PyTorch cannot be imported, and writes what ``predict`` writes.

The scoring process gets a ``sys.meta_path`` finder that raises ImportError for ``torch`` (and
its submodules) before ``studio_core.cli.main.main`` runs, then checks torch never got in."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_synthetic

from studio_core.cli.main import main

NO_TORCH = r"""
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, NoTorch())
from studio_core.cli.main import main

rc = main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
if leaked:
    print("torch was imported: " + ", ".join(leaked[:5]), file=sys.stderr)
    sys.exit(99)
sys.exit(rc)
"""


def score_no_torch(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, "score", *map(str, args)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A trained run and its INT8 bundle (trained and exported once for this module)."""
    tmp = tmp_path_factory.mktemp("score")
    data = write_synthetic(tmp / "syn.csv", n=800)
    assert main(["train", "--data", str(data), "--label", "target", "--epochs", "1", "--out", str(tmp / "run"), "--quiet"]) == 0
    assert main(["export", "--run", str(tmp / "run"), "--out", str(tmp / "b.zip"), "--int8", "--data", str(data)]) == 0
    return tmp


def read_preds(path: Path) -> np.ndarray:
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert list(rows[0]) == ["prediction"]
    return np.array([float(r["prediction"]) for r in rows])


def test_score_without_torch_matches_predict(exported, tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text("colour,size,x1,x2,extra\nred,L,0.5,1.0,a\npurple,XL,,,b\n,,-2,0.1,c\nblue,S,1e9,,d\ngrün,M,0,3,e\n", encoding="utf-8")
    p = score_no_torch("--bundle", exported / "b.zip", "--data", new, "--out", tmp_path / "s.csv")
    assert p.returncode == 0, p.stderr
    assert "5 predictions written" in p.stdout and p.stderr == ""
    assert main(["predict", "--run", str(exported / "run"), "--data", str(new), "--out", str(tmp_path / "p.csv")]) == 0
    got, want = read_preds(tmp_path / "s.csv"), read_preds(tmp_path / "p.csv")
    assert len(got) == 5
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)

    # a missing column: same warning as predict, still one row per input row, in order
    partial = tmp_path / "partial.csv"
    partial.write_text("colour,x1\nred,0.5\npurple,\nblue,-1\n", encoding="utf-8")
    p = score_no_torch("--bundle", exported / "b.zip", "--data", partial, "--out", tmp_path / "s2.csv")
    assert p.returncode == 2 and "--allow-missing" in p.stderr  # half the features missing: refused, as predict refuses
    p = score_no_torch("--bundle", exported / "b.zip", "--data", partial, "--out", tmp_path / "s2.csv", "--allow-missing")
    assert p.returncode == 0 and "missing from the input" in p.stderr and "size" in p.stderr
    capsys.readouterr()
    assert main(["predict", "--run", str(exported / "run"), "--data", str(partial), "--out", str(tmp_path / "p2.csv"), "--allow-missing"]) == 0
    _, predict_err = capsys.readouterr()
    assert p.stderr == predict_err
    np.testing.assert_allclose(read_preds(tmp_path / "s2.csv"), read_preds(tmp_path / "p2.csv"), rtol=1e-6, atol=1e-5)

    # the INT8 graph also scores without torch, close to the float scores on ordinary rows (dynamic
    # quantisation scales activations per call, so an extreme row like x1=1e9 would move its batch)
    ordinary = tmp_path / "ordinary.csv"
    ordinary.write_text("colour,size,x1,x2\nred,L,0.5,1.0\npurple,XL,,\n,,-2,0.1\ngrün,M,0,3\n", encoding="utf-8")
    p = score_no_torch("--bundle", exported / "b.zip", "--data", ordinary, "--out", tmp_path / "s8.csv", "--int8")
    assert p.returncode == 0, p.stderr
    assert main(["predict", "--run", str(exported / "run"), "--data", str(ordinary), "--out", str(tmp_path / "p8.csv")]) == 0
    assert np.max(np.abs(read_preds(tmp_path / "s8.csv") - read_preds(tmp_path / "p8.csv"))) < 0.02


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    return path


def test_bad_bundles_exit_2_with_one_error_line(exported, tmp_path):
    good = zipfile.ZipFile(exported / "b.zip")
    files = {n: good.read(n) for n in good.namelist()}
    manifest = json.loads(files["bundle.json"])
    not_zip = tmp_path / "notzip.zip"
    not_zip.write_text("hello")
    no_model = write_zip(tmp_path / "nomodel.zip", {k: v for k, v in files.items() if k != "model.onnx"})
    future = write_zip(tmp_path / "future.zip", {**files, "bundle.json": json.dumps({**manifest, "format_version": 99}).encode()})
    no_raw = write_zip(tmp_path / "noraw.zip", {k: v for k, v in files.items() if k != "raw.onnx"})
    broken = write_zip(tmp_path / "broken.zip", {**files, "raw.onnx": b"not onnx"})
    data = tmp_path / "d.csv"
    data.write_text("colour,size,x1,x2\nred,L,0.5,1.0\n", encoding="utf-8")
    for bundle, needle in ((not_zip, "not a zip file"), (tmp_path / "absent.zip", "no such bundle file"), (no_model, "missing model.onnx"),
                           (future, "format version 99 is not supported"), (no_raw, "raw.onnx missing"), (broken, "cannot be loaded")):
        p = score_no_torch("--bundle", bundle, "--data", data, "--out", tmp_path / "o.csv")
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2, (needle, p.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0] and "Traceback" not in p.stderr
