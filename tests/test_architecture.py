"""The import rules of the layer table in docs/architecture.md, checked on every module.

Every module of ``czbuild/`` (and ``dodo.py``) is parsed with :mod:`ast`; each import of a
``czbuild`` module (absolute or relative, at module level or inside a function, and the
module names handed to ``importlib.import_module``) is mapped to its layer and checked
against :data:`LAYERS`, which mirrors the table in docs/architecture.md ("module |
responsibility | may import"). Change the two together.

Reading of the table encoded here:

* a layer may always import itself, ``errors`` (the root of the exception hierarchy that
  every layer raises) and the package root ``czbuild`` (``__version__``; its public names are
  re-exported lazily, and Python imports it for every submodule anyway);
* "(+ X lazily)" allows X only inside a function (or under ``if TYPE_CHECKING:``);
* TensorFlow (and Keras, tf2onnx) is imported at module level only inside ``keras``, and
  lazily only by ``convert`` and ``verify`` (the paragraph above the table).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "czbuild"

# Layer -> the module prefixes that belong to it (longest prefix wins).
MODULES: dict[str, tuple[str, ...]] = {
    "errors": ("czbuild.errors",),
    "progress": ("czbuild.progress",),
    "files": ("czbuild.files",),
    "formats": ("czbuild.formats",),
    "ops": ("czbuild.ops",),
    "keras": ("czbuild.keras",),
    # Framework-neutral ONNX tools (canonical form, checks, tile specialisation) that every
    # adapter shares.
    "onnx_graph": ("czbuild.onnx_graph",),
    "sources": ("czbuild.sources",),
    "sources.dispatch": ("czbuild.sources.dispatch",),
    "onnx_source": ("czbuild.onnx_source",),
    "torch_source": ("czbuild.torch_source",),
    "convert": (
        "czbuild.model_metadata",
        "czbuild.json_spec",
        "czbuild.json_document",
        "czbuild.convert",
        "czbuild.preprocessing",
    ),
    "recipe": ("czbuild.recipe",),
    "builder": ("czbuild.builder",),
    "release": ("czbuild.release",),
    "verify": ("czbuild.verify",),
    "images": ("czbuild.images",),
    "predict": ("czbuild.predict",),
    # Plain data the recipe and builder layers use (imports nothing of czbuild).
    "verify.settings": ("czbuild.verify.settings",),
    "scaffold": ("czbuild.scaffold",),
    "cli": ("czbuild.cli",),
    # Not rows of the table: the package's lazy re-exports and `python -m czbuild`.
    "package": ("czbuild",),
    "main": ("czbuild.__main__",),
    "dodo": ("dodo",),
}


@dataclass(frozen=True)
class Rule:
    """What one layer may import: at module level (``eager``) and inside functions (``lazy``)."""

    eager: frozenset[str]
    lazy: frozenset[str] = frozenset()


def _rule(eager: str = "", lazy: str = "") -> Rule:
    return Rule(frozenset(eager.split()), frozenset(lazy.split()))


EVERYTHING = " ".join(MODULES)

# The "may import" column of docs/architecture.md.
LAYERS: dict[str, Rule] = {
    "errors": _rule(),
    "progress": _rule(),
    "files": _rule("errors"),
    "formats": _rule("errors"),
    "ops": _rule("errors"),
    "keras": _rule("formats ops errors sources onnx_graph"),
    "onnx_graph": _rule("formats errors"),
    "sources": _rule(),
    "sources.dispatch": _rule("sources", lazy="keras onnx_source torch_source"),
    "onnx_source": _rule("formats ops sources onnx_graph"),
    "torch_source": _rule("ops sources onnx_source onnx_graph"),
    "convert": _rule("formats ops", lazy="keras sources sources.dispatch"),
    "recipe": _rule("formats ops errors verify.settings sources"),
    "builder": _rule(
        "recipe convert formats verify.settings progress",
        lazy="verify sources sources.dispatch",
    ),
    "release": _rule("builder recipe formats", lazy="verify"),
    "verify": _rule(
        "formats ops verify.settings progress images",
        lazy="keras onnx_graph sources sources.dispatch predict",
    ),
    "images": _rule("files errors"),
    "predict": _rule("formats images files progress errors"),
    "verify.settings": _rule(),
    "scaffold": _rule("files formats recipe", lazy="verify sources"),
    "cli": _rule(EVERYTHING),
    "package": _rule(lazy=EVERYTHING),
    "main": _rule("cli"),
    "dodo": _rule(EVERYTHING),
}

TENSORFLOW = ("tensorflow", "keras", "tf2onnx")
TENSORFLOW_EAGER = {"keras"}
TENSORFLOW_LAZY = {
    "keras",
    "convert",
    "verify",
    "formats",
}  # formats: the payload runner


@dataclass(frozen=True)
class Import:
    """One import statement (or ``importlib.import_module`` name) found in a module."""

    source: str  # importing module, dotted
    path: str  # its file, relative to the repository
    line: int
    target: str  # imported module, dotted
    lazy: bool  # inside a function, or under `if TYPE_CHECKING:`


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts) + [
        ROOT / "dodo.py"
    ]


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute module names an ``ImportFrom`` refers to (``from . import x`` -> ``pkg.x``).

    ``from pkg import name`` imports the submodule ``pkg.name`` when there is one, else a
    name defined in ``pkg``.
    """
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    targets = []
    for alias in node.names:
        sub = f"{prefix}.{alias.name}"
        targets.append(sub if prefix.startswith("czbuild") and _exists(sub) else prefix)
    return sorted(set(targets))


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, path: Path) -> None:
        self.module = module
        self.path = path
        self.is_package = path.name == "__init__.py"
        self.depth = 0  # functions and `if TYPE_CHECKING:` blocks
        self.found: list[Import] = []
        self.dynamic: list[tuple[int, str]] = []
        self.calls_import_module = False

    def _add(self, node: ast.AST, targets: list[str]) -> None:
        for target in targets:
            self.found.append(
                Import(
                    self.module,
                    self.path.relative_to(ROOT).as_posix(),
                    getattr(node, "lineno", 0),
                    target,
                    self.depth > 0,
                )
            )

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = _nested
    visit_AsyncFunctionDef = _nested
    visit_Lambda = _nested

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name == "TYPE_CHECKING":
            self._nested(node)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._add(node, _resolve(self.module, self.is_package, node))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "import_module":
            self.calls_import_module = True
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value.startswith("czbuild."):
            self.dynamic.append((node.lineno, node.value))


def _exists(module: str) -> bool:
    relative = Path(*module.split("."))
    return (ROOT / relative).with_suffix(".py").is_file() or (
        ROOT / relative / "__init__.py"
    ).is_file()


@functools.cache
def _collect() -> tuple[Import, ...]:
    imports: list[Import] = []
    for path in _files():
        collector = _Collector(_module_name(path), path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        imports += collector.found
        if collector.calls_import_module:  # module names in tables, imported on demand
            for line, text in collector.dynamic:
                if _exists(text):
                    imports.append(
                        Import(
                            collector.module, path.relative_to(ROOT).as_posix(), line, text, True
                        )
                    )
    return tuple(imports)


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name, or None if no row of the table covers it."""
    best: tuple[int, str] | None = None
    for layer, prefixes in MODULES.items():
        for prefix in prefixes:
            exact_only = layer == "package"
            matches = module == prefix or (not exact_only and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def _czbuild_imports() -> list[Import]:
    return [
        i
        for i in _collect()
        if (i.target == "czbuild" or i.target.startswith("czbuild.")) and _exists(i.target)
    ]


def _violations() -> dict[str, str]:
    """``"importing file -> imported module"`` -> the message naming the line and the rule."""
    out: dict[str, str] = {}
    for i in _czbuild_imports():
        source, target = layer_of(i.source), layer_of(i.target)
        if source is None or target is None or source == target:
            continue
        if target in ("errors", "files", "package"):
            continue
        rule = LAYERS[source]
        if target in rule.eager or (i.lazy and target in rule.lazy):
            continue
        if target in rule.lazy:
            why = f"{source} may import {target} only lazily (inside a function)"
        else:
            allowed = " ".join(sorted(rule.eager | {f"{x}(lazily)" for x in rule.lazy}))
            why = f"{source} may import only: {allowed or 'nothing'}"
        kind = "lazy import" if i.lazy else "import"
        out[f"{i.path} -> {i.target}"] = (
            f"{i.path}:{i.line}: {kind} of {i.target} ({target}) breaks a rule: {why}"
        )
    return out


# Violations of the table found when this test was written (the code, not the table, is
# wrong; see the lead's report). The test fails on any new one and when one is fixed, so
# the list only shrinks.
KNOWN_VIOLATIONS: set[str] = set()


def test_every_module_belongs_to_a_layer_of_the_table() -> None:
    modules = {_module_name(p) for p in _files()}
    orphans = sorted(m for m in modules if layer_of(m) is None)
    assert not orphans, (
        f"modules outside every row of the layer table: {orphans}; add their package to "
        "docs/architecture.md and to MODULES/LAYERS in tests/test_architecture.py"
    )
    assert set(MODULES) == set(LAYERS)


def test_the_table_mirrors_the_architecture_doc() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for layer, prefixes in MODULES.items():
        if layer in ("package", "main", "dodo"):
            continue
        for prefix in prefixes:
            path = prefix.replace(".", "/")
            assert f"`{path}/`" in doc or f"`{path}.py`" in doc, (
                f"{path} (layer {layer}) is not a row of docs/architecture.md"
            )


def test_imports_follow_the_layer_table() -> None:
    violations = _violations()
    new = sorted(violations[key] for key in set(violations) - KNOWN_VIOLATIONS)
    fixed = sorted(KNOWN_VIOLATIONS - set(violations))
    assert not new, "imports that break docs/architecture.md's layer table:\n" + "\n".join(new)
    assert not fixed, "fixed (remove from KNOWN_VIOLATIONS):\n" + "\n".join(fixed)


# TensorFlow imports outside the places the doc names, found when this test was written.
KNOWN_TENSORFLOW: set[str] = set()


def test_tensorflow_is_imported_only_where_the_doc_says() -> None:
    bad: dict[str, str] = {}
    for i in _collect():
        if i.target.split(".")[0] not in TENSORFLOW:
            continue
        layer = layer_of(i.source)
        allowed = TENSORFLOW_LAZY if i.lazy else TENSORFLOW_EAGER
        if layer not in allowed:
            where = "inside a function" if i.lazy else "at module level"
            bad[f"{i.path} -> {i.target}"] = (
                f"{i.path}:{i.line}: {i.target} imported {where} by layer {layer}"
            )
    new = sorted(bad[key] for key in set(bad) - KNOWN_TENSORFLOW)
    fixed = sorted(KNOWN_TENSORFLOW - set(bad))
    assert not new, "TensorFlow imported outside keras/, convert, verify:\n" + "\n".join(new)
    assert not fixed, "fixed (remove from KNOWN_TENSORFLOW):\n" + "\n".join(fixed)


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("czbuild", "package"),
        ("czbuild.errors", "errors"),
        ("czbuild.formats.archive", "formats"),
        ("czbuild.convert", "convert"),
        ("czbuild.builder.runner", "builder"),
        ("czbuild.release.build_lock", "release"),
        ("czbuild.cli.options", "cli"),
        ("czbuild.nothing_here", None),
    ],
)
def test_layer_of(module: str, layer: str | None) -> None:
    assert layer_of(module) == layer


def test_relative_and_lazy_imports_are_seen(tmp_path: Path) -> None:
    source = (
        "from . import archive\n"
        "from ..errors import CzbuildError\n"
        "def f():\n"
        "    from czbuild.keras import converter\n"
    )
    path = PACKAGE / "formats" / "example.py"
    collector = _Collector("czbuild.formats.example", path)
    collector.visit(ast.parse(source))
    seen = {(i.target, i.lazy) for i in collector.found}
    assert ("czbuild.formats.archive", False) in seen
    assert ("czbuild.errors", False) in seen
    assert ("czbuild.keras.converter", True) in seen


def _cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module in the czbuild import graph.

    Edges are explicit imports (module level or lazy) between modules; imports of a
    package's ``__init__`` are left out, since a package re-exporting its submodules is not
    a dependency cycle.
    """
    graph: dict[str, set[str]] = {}
    for i in _czbuild_imports():
        target_is_package = (ROOT / Path(*i.target.split(".")) / "__init__.py").is_file()
        if i.source != i.target and not target_is_package:
            graph.setdefault(i.source, set()).add(i.target)
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
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


# Import cycles found when this test was written (another engineer is breaking this one).
KNOWN_CYCLES: list[list[str]] = []


def test_no_import_cycles_between_modules() -> None:
    cycles = _cycles()
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    fixed = [c for c in KNOWN_CYCLES if c not in cycles]
    assert not new, "modules that import each other (directly or through others):\n" + "\n".join(
        " <-> ".join(c) for c in new
    )
    assert not fixed, f"cycles fixed (remove from KNOWN_CYCLES): {fixed}"
