"""The engine never imports Streamlit; the app never imports torch directly."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(folder: Path) -> dict[str, set[str]]:
    out = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


def test_the_checks_see_the_code():
    """The checks below read real folders: an empty scan (a moved package) would pass them all."""
    assert len(imported_modules(ROOT / "studio_core")) > 20 and len(imported_modules(ROOT / "app")) >= 6


def test_studio_core_does_not_import_streamlit():
    offenders = [f for f, names in imported_modules(ROOT / "studio_core").items() if "streamlit" in names]
    assert offenders == []


def test_app_does_not_import_torch():
    app = ROOT / "app"
    offenders = [f for f, names in imported_modules(app).items() if "torch" in names]
    assert offenders == []


def test_no_pickle_in_engine():
    offenders = [f for f, names in imported_modules(ROOT / "studio_core").items() if names & {"pickle", "dill", "joblib", "cloudpickle"}]
    assert offenders == []
