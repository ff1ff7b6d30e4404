"""The workspace's walls, read from the source: an AST scan of every import, those inside functions too.

Where the code lives: `packages/nmm-core/src` is core, the other `packages/*/src` are domains,
`apps/*/src` are apps, `benchmarks/src` is the benchmarks.

- Core never imports a domain, an app or the benchmarks.
- A domain never imports another domain, an app or the benchmarks.
- Apps and benchmarks use public names only. A name X imported from a workspace package P is
  public when X is in P's `__all__` (read statically from P's `__init__.py`). The import may name
  the submodule that holds X (`from nmm_core.config import build_parser`) as well as the package
  itself: both give the same object (nmm_core's lazy `__getattr__` loads exactly that module), and
  the promise that X stays is P's `__all__`, not its module layout. A whole submodule
  (`import nmm_core.runs`, `from nmm_core import runs`) is not a public name, and neither is a
  name missing from `__all__`, wherever it is imported from.
- No import circles between modules, counting imports inside functions. A function-level import
  cannot fail at load time the way a module-level circle can, but it is still a dependency: two
  modules that import each other are one module in two files, and a lazy import is for keeping
  `--help` free of torch, not for hiding a circle. `from P import X` counts as an import of the
  module X is loaded from (P's `_EXPORTS[X]` where P is lazy like nmm_core, else P.X when that
  is a module, else P's `__init__`). `if TYPE_CHECKING:` imports are left out: they never run.

`walls_broken(root)` returns one line per breach; the real tree must give none, and a tiny fake
tree with one breach of each kind must give exactly those.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Imported:
    """One imported module (and, for `from M import X`, the name X), where it was written."""

    source: str
    module: str
    name: str | None
    line: int


def _modules(root: Path) -> dict[str, tuple[Path, str]]:
    """Every module under the scanned src folders: dotted name -> (file, kind)."""
    found: dict[str, tuple[Path, str]] = {}
    places = [(src, "core" if src.parent.name == "nmm-core" else "domain") for src in root.glob("packages/*/src")]
    places += [(src, "app") for src in root.glob("apps/*/src")] + [(root / "benchmarks" / "src", "bench")]
    for src, kind in places:
        for path in sorted(src.rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts:
                found[".".join(parts)] = (path, kind)
    return found


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(name: str, path: Path) -> list[Imported]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[Imported] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            out += [Imported(name, alias.name, None, node.lineno) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        out += [Imported(name, base, alias.name, node.lineno) for alias in node.names]
    return out


def _literal(node: ast.expr, names: dict[str, ast.expr]) -> list[str]:
    """The strings a static `__all__` expression holds: literals, `sorted(D)`, `list(D)`, `a + b`."""
    if isinstance(node, ast.Name) and node.id in names:
        return _literal(names[node.id], names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left, names) + _literal(node.right, names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("sorted", "list", "tuple"):
        return _literal(node.args[0], names)
    if isinstance(node, ast.Dict):
        return [key.value for key in node.keys if isinstance(key, ast.Constant)]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [item.value for item in node.elts if isinstance(item, ast.Constant)]
    raise AssertionError(f"cannot read __all__ statically: {ast.unparse(node)}")


def _package_api(path: Path) -> tuple[set[str], dict[str, str]]:
    """A package's `__all__` and its lazy `_EXPORTS` map (name -> submodule), read from its source."""
    names: dict[str, ast.expr] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            names[node.target.id] = node.value
    public = set(_literal(names["__all__"], names)) if "__all__" in names else set()
    exports = names.get("_EXPORTS")
    lazy = (
        {k.value: v.value for k, v in zip(exports.keys, exports.values, strict=True)}  # type: ignore[union-attr]
        if isinstance(exports, ast.Dict)
        else {}
    )
    return public, lazy


def _defined(path: Path) -> set[str]:
    """The names a module defines or imports at its top level."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _target(imp: Imported, modules: dict[str, tuple[Path, str]], lazy: dict[str, dict[str, str]]) -> str | None:
    """The scanned module an import loads, or None when it is outside the workspace."""
    if imp.name is not None:
        if f"{imp.module}.{imp.name}" in modules:
            return f"{imp.module}.{imp.name}"
        if imp.name in lazy.get(imp.module, {}):
            return f"{imp.module}.{lazy[imp.module][imp.name]}"
    module = imp.module
    while module and module not in modules:
        module = module.rpartition(".")[0]
    return module or None


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def walls_broken(root: Path) -> list[str]:
    """One line per breach of the walls in the tree at `root`."""
    modules = _modules(root)
    kind_of = {name: kind for name, (_, kind) in modules.items()}
    tops = {name for name in modules if "." not in name}
    api = {top: _package_api(modules[top][0]) for top in tops if modules[top][0].name == "__init__.py"}
    lazy = {top: exports for top, (_, exports) in api.items()}
    broken = [
        f"{top}: {name} is in _EXPORTS but {top}.{module} does not define it"
        for top, exports in sorted(lazy.items())
        for name, module in sorted(exports.items())
        if f"{top}.{module}" not in modules or name not in _defined(modules[f"{top}.{module}"][0])
    ]
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, kind) in sorted(modules.items()):
        for imp in _imports(name, path):
            target = _target(imp, modules, lazy)
            if target is None:
                continue
            where = f"{name}:{imp.line}"
            mine, theirs = name.split(".")[0], target.split(".")[0]
            if target != name:
                graph[name].add(target)
            if mine == theirs:
                continue
            other = kind_of[theirs]
            if kind == "core" and other != "core":
                broken.append(f"{where}: core imports {other} {theirs}")
            elif kind == "domain" and other != "core":
                broken.append(f"{where}: domain {mine} imports {other} {theirs}")
            elif kind in ("app", "bench"):
                public = api.get(theirs, (set(), {}))[0]
                if imp.name is None or imp.name not in public:
                    what = imp.module if imp.name is None else f"{imp.module}.{imp.name}"
                    broken.append(f"{where}: {kind} {mine} uses {what}, not in {theirs}.__all__")
    broken += [f"import circle: {' <-> '.join(group)}" for group in _circles(graph)]
    return broken


def test_the_workspace_keeps_its_walls() -> None:
    assert walls_broken(ROOT) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_scanner_finds_each_kind_of_breach(tmp_path: Path) -> None:
    core = "packages/nmm-core/src/nmm_core"
    _write(
        tmp_path,
        {
            f"{core}/__init__.py": (
                '_EXPORTS = {"run": "runs", "gone": "runs"}\n__all__ = sorted(_EXPORTS) + ["__version__"]\n'
            ),
            f"{core}/runs.py": "def run():\n    from nmm_a.data import load\n",
            f"{core}/private.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import nmm_b\nhidden = 1\n",
            "packages/nmm-a/src/nmm_a/__init__.py": '__all__ = ["load"]\n',
            "packages/nmm-a/src/nmm_a/data.py": (
                "from .fc import f\nfrom nmm_core.private import hidden\ndef load(): ...\n"
            ),
            "packages/nmm-a/src/nmm_a/fc.py": "def f():\n    from nmm_a import data\n",
            "packages/nmm-b/src/nmm_b/__init__.py": "import nmm_a.data\n",
            "apps/demo/src/nmm_demo/__init__.py": (
                "from nmm_core import run\nfrom nmm_core.runs import run\nfrom nmm_core.private import hidden\n"
                "import nmm_core.runs\nfrom nmm_a import load\n"
            ),
            "benchmarks/src/nmm_bench/__init__.py": "from nmm_a.fc import f\nfrom nmm_core import __version__\n",
        },
    )
    assert walls_broken(tmp_path) == [
        "nmm_core: gone is in _EXPORTS but nmm_core.runs does not define it",
        "nmm_b:1: domain nmm_b imports domain nmm_a",
        "nmm_bench:1: bench nmm_bench uses nmm_a.fc.f, not in nmm_a.__all__",
        "nmm_core.runs:2: core imports domain nmm_a",
        "nmm_demo:3: app nmm_demo uses nmm_core.private.hidden, not in nmm_core.__all__",
        "nmm_demo:4: app nmm_demo uses nmm_core.runs, not in nmm_core.__all__",
        "import circle: nmm_a.data <-> nmm_a.fc",
    ]


def test_a_circle_through_a_lazy_package_export_is_found(tmp_path: Path) -> None:
    core = "packages/nmm-core/src/nmm_core"
    _write(
        tmp_path,
        {
            f"{core}/__init__.py": '_EXPORTS = {"run": "runs", "Cfg": "config"}\n__all__ = sorted(_EXPORTS)\n',
            f"{core}/runs.py": "from nmm_core import Cfg\ndef run(): ...\n",
            f"{core}/config.py": "class Cfg:\n    def go(self):\n        from nmm_core import run\n",
        },
    )
    assert walls_broken(tmp_path) == ["import circle: nmm_core.config <-> nmm_core.runs"]
