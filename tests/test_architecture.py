"""The layers drawn in the README hold: import-linter's contracts (pyproject.toml, [tool.importlinter]) pass,
every module is in a layer, and no module-level import cycle exists.

    lint-imports        # the same contracts from the command line, with the offending import chains
"""

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # import-linter depends on tomli below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sqlft", "eval", "serve", "ui")


def importlinter_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def modules() -> dict[str, Path]:
    """Every module of the four packages: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def test_the_import_contracts_hold(monkeypatch, capsys):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_every_module_is_in_a_layer():
    (layers,) = [c["layers"] for c in importlinter_config()["contracts"] if c["type"] == "layers"]
    placed = [name.strip() for layer in layers for name in layer.replace("|", ":").split(":")]
    loose = sorted(m for m in modules() if m not in PACKAGES
                   and not any(m == p or m.startswith(p + ".") for p in placed))
    assert not loose, (f"{loose} in no layer: add each to the layers contract in pyproject.toml "
                       "(bottom: model-free SQL; middle: model stack; top: commands)")


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that `name` imports anywhere: at module level and inside functions and classes alike
    (an import inside a function is still a dependency, only a later one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: from the package this module is in
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base])
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    # `import a.b.c` also imports a and a.b: a package's own __init__ is not a dependency on its children
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


def test_no_import_cycle_anywhere():
    known = modules()
    graph = {name: imports_of(name, path, set(known)) for name, path in known.items()}
    # Tarjan's strongly connected components: any with more than one module is a cycle
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles (imports inside functions included): {cycles}"


# The last edge is planted inside a function: an import that runs only when called still counts.
@pytest.mark.parametrize("edge", [("sqlft.sql.schema", "sqlft.model.generate"), ("sqlft.sql.dialect", "eval.run"),
                                  ("sqlft.data.formats", "sqlft.training.sft", "inside a function")])
def test_the_layer_check_sees_an_upward_import(tmp_path, monkeypatch, capsys, edge):
    """The contract is not vacuous: a copy of the tree with one upward import added breaks it."""
    import shutil

    from importlinter.cli import lint_imports

    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.jsonl"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    importer, imported, *where = edge
    path = tmp_path / (importer.replace(".", "/") + ".py")
    planted = (f"\ndef _planted():\n    import {imported}  # upward\n" if where else f"\nimport {imported}  # upward\n")
    path.write_text(path.read_text() + planted)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cached = {m: sys.modules.pop(m) for m in list(sys.modules) if m.split(".")[0] in PACKAGES}
    try:
        code = lint_imports(config_filename=str(tmp_path / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:  # the copies that finding the packages imported go; the real modules come back
        for m in [m for m in sys.modules if m.split(".")[0] in PACKAGES]:
            del sys.modules[m]
        sys.modules.update(cached)
    assert code == 1 and "imports only from the layers below it BROKEN" in capsys.readouterr().out


def test_the_readme_draws_every_layer_of_the_contract():
    """The README's house and the contract cannot drift apart: its picture names the contract's layers, top to
    bottom, one row each, in the same order and with the same packages side by side."""
    (layers,) = [c["layers"] for c in importlinter_config()["contracts"] if c["type"] == "layers"]
    readme = (ROOT / "README.md").read_text()
    picture = readme.split("## How it is built", 1)[1].split("```")[1]
    rows = [line.split("  ")[0].strip() for line in picture.strip("\n").split("\n")
            if line.startswith(" ") and line.split("  ")[0].strip()]
    drawn = [" | ".join(p.strip() for p in row.split("|")) for row in rows if row.split()[0] in modules()]
    contract = [" | ".join(p.strip() for p in layer.split("|")) for layer in layers]
    assert drawn == contract, f"README's house {drawn} != the contract's layers {contract}"


def test_a_main_block_comes_last():
    """`python -m sqlft.commands.train` runs the `if __name__ == "__main__"` block as soon as it is reached: a function
    defined below it does not exist yet (this broke `python -m sqlft.commands.train` once, while `sqlft train` worked)."""
    late = []
    for name, path in modules().items():
        body = ast.parse(path.read_text()).body
        for i, node in enumerate(body):
            if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                    and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
                    and i != len(body) - 1):
                late.append(f"{name}: line {node.lineno}")
    assert not late, f"code after the __main__ block: {late}"


MAX_FUNCTION_LINES = 60


def test_no_function_over_60_lines_without_its_reason_beside_it():
    """Small units: a function over MAX_FUNCTION_LINES lines (def to last line, docstring included) is split, or
    a comment right above it (above its decorators) says why it is kept whole, with the words "kept whole"."""
    unexplained = []
    for name, path in modules().items():
        lines = path.read_text().split("\n")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            if length <= MAX_FUNCTION_LINES:
                continue
            top = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1  # 0-based index of the first line
            above = []
            while top > 0 and lines[top - 1].strip().startswith("#"):
                top -= 1
                above.append(lines[top])
            if "kept whole" not in " ".join(above).lower():
                unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not unexplained, (f"functions over {MAX_FUNCTION_LINES} lines: {unexplained}; split them, or write why "
                             "one is kept whole in a comment right above it (# ... kept whole: <why>)")
