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


# ---- the tree reads as the flow (issue 15) ---------------------------------------------------

# stage packages in the order data flows; a package imports only from itself and earlier ones
STAGES = ["common", "spec", "data", "features", "model", "training", "runs", "explain", "compare", "export", "report", "tracking", "jobs", "cli"]
MAX_LINES = 400


def _engine_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the engine."""
    pkg = root / "studio_core"
    out = {}
    for path in pkg.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    return skip


def engine_imports(path: Path, modules: set[str], package: str) -> set[str]:
    """The engine modules a file imports, at module level or inside functions (lazy imports
    count: they run too), relative ones resolved against ``package``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base in modules:
                out.add(base)
            for a in node.names:  # ``from studio_core.runs import train`` imports the module train
                if f"{base}.{a.name}" in modules:
                    out.add(f"{base}.{a.name}")
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    mods = _engine_modules(root)
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = engine_imports(path, set(mods), package) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            # importing a.b.c runs a/__init__ and a/b/__init__ first: a package's own __init__ is no edge back
            if state.get(w) == 1 and not v.startswith(w + "."):
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles_in_the_engine_lazy_imports_included():
    graph = import_graph()
    assert len(graph) > 60 and any(graph.values())
    assert find_cycle(graph) is None


def test_every_engine_module_sits_in_a_stage_package_with_a_docstring():
    mods = _engine_modules()
    loose = [m for m in mods if m.count(".") == 1 and m.split(".")[1] not in STAGES and m not in ("studio_core.__main__",)]
    assert loose == [], "put each module in the stage package of its job"
    assert sorted(m.split(".")[1] for m in mods if m.count(".") == 1 and m.split(".")[1] in STAGES) == sorted(STAGES)
    for stage in STAGES:
        assert ast.get_docstring(ast.parse(mods[f"studio_core.{stage}"].read_text(encoding="utf-8"))), f"studio_core/{stage} needs a docstring"


def test_stage_packages_import_only_from_earlier_stages():
    backwards = []
    for mod, deps in import_graph().items():
        parts = mod.split(".")
        if len(parts) < 2 or parts[1] not in STAGES:
            continue
        here = STAGES.index(parts[1])
        backwards += [f"{mod} -> {d}" for d in deps if d.count(".") >= 1 and d.split(".")[1] in STAGES and STAGES.index(d.split(".")[1]) > here]
    assert backwards == []


def test_the_app_imports_only_public_engine_entry_points():
    """``from studio_core.<stage>.<module> import <public name>``: no private helpers, no reaching
    past a module into its internals."""
    mods = _engine_modules()
    offenders = []
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("studio_core"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if node.module not in mods or private:
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import {', '.join(a.name for a in node.names)}")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names if a.name.startswith("studio_core") and a.name not in mods]
    assert offenders == []


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for folder in ("studio_core", "app") for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
