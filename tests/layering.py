"""The shape of the house, measured from the source: imports, cycles, sizes, sleepers.

Read by ``tests/test_layering.py`` and runnable on its own (``python -m tests.layering``) to print
the figures. Everything is read with ``ast`` from the files, so an import inside a function or
under ``TYPE_CHECKING`` counts like any other: a cycle that only shows up at run time is still a
cycle a reader has to hold in their head.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "s3result"
#: The parts that sit on top of the runtime: a worker never imports them.
ON_TOP = ("s3result.cli", "s3result.testing", "s3result.conformance")


#: The runtime's layers, bottom up: (rank, name, the modules or folders in it). A module may import
#: its own layer and any of a lower rank; layers of one rank (waits, chords) import neither the other.
LAYERS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (0, "the S3 client", ("s3result.s3",)),
    (1, "errors", ("s3result.errors", "s3result")),
    (2, "results", ("s3result.results",)),
    (3, "waits", ("s3result.waits",)),
    (3, "chords", ("s3result.chords",)),
    (4, "the backend", ("s3result.backend", "s3result.worker")),
    (5, "on top", ON_TOP),
)


def layer_of(name: str) -> tuple[int, str] | None:
    """The rank and name of the layer ``name`` belongs to (the most specific match), or None."""
    best: tuple[int, int, str] | None = None
    for rank, layer, members in LAYERS:
        for member in members:
            if name == member or name.startswith(member + "."):
                if best is None or len(member) > best[0]:
                    best = (len(member), rank, layer)
    return None if best is None else (best[1], best[2])


def against_layers(modules: dict[str, Module]) -> list[str]:
    """Imports that go the wrong way: up a layer, or across to a sibling layer of the same rank."""
    wrong = []
    for name, module in sorted(modules.items()):
        here = layer_of(name)
        if here is None:
            wrong.append(f"{name}: in no layer")
            continue
        for target in sorted(module.imports):
            there = layer_of(target)
            if there is None or there == here or target == "s3result":
                continue
            if there[0] > here[0] or (there[0] == here[0] and there[1] != here[1]):
                wrong.append(f"{name} ({here[1]}) -> {target} ({there[1]})")
    return wrong


@dataclass
class Module:
    """One module of the package, as read from its file."""

    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    lines: int
    imports: set[str] = field(default_factory=set)
    private_uses: list[str] = field(default_factory=list)


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def load(root: Path = ROOT) -> dict[str, Module]:
    """Every module of the package, by dotted name."""
    modules: dict[str, Module] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        name, is_package = _module_name(path)
        text = path.read_text(encoding="utf-8")
        modules[name] = Module(name, path, is_package, ast.parse(text), len(text.splitlines()))
    for module in modules.values():
        _read_imports(module, modules)
    return modules


def _resolve(module: Module, level: int, target: str | None) -> str:
    """The absolute name a ``from ... import`` refers to."""
    if level == 0:
        return target or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _read_imports(module: Module, modules: dict[str, Module]) -> None:
    aliases: dict[str, str] = {}  # local name -> package module it names
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + ".") or alias.name == PACKAGE:
                    module.imports.add(_nearest(alias.name, modules))
                    if alias.asname:
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node.level, node.module)
            if not (source == PACKAGE or source.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:  # ``from . import sigv4``: the submodule itself
                    module.imports.add(sub)
                    aliases[alias.asname or alias.name] = sub
                else:
                    module.imports.add(_nearest(source, modules))
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        module.private_uses.append(f"{source}.{alias.name}")
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            module.private_uses.append(f"{aliases[node.value.id]}.{node.attr}")
    module.imports.discard(module.name)


def _nearest(name: str, modules: dict[str, Module]) -> str:
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(modules[v].imports):
            if w not in modules:
                continue
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
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for name in sorted(modules):
        if name not in index:
            visit(name)
    return sorted(found)


def depth(modules: dict[str, Module]) -> tuple[int, list[str]]:
    """The longest import chain, counted in modules: a cycle counts once (its modules as one)."""
    component = {name: name for name in modules}
    for cycle in cycles(modules):
        for name in cycle:
            component[name] = "{" + ", ".join(cycle) + "}"
    edges: dict[str, set[str]] = {c: set() for c in component.values()}
    for name, module in modules.items():
        edges[component[name]] |= {component[w] for w in module.imports if w in modules} - {component[name]}
    best: dict[str, list[str]] = {}

    def chain(v: str) -> list[str]:
        if v not in best:
            best[v] = [v, *max((chain(w) for w in sorted(edges[v])), key=len, default=[])]
        return best[v]

    top = max((chain(v) for v in sorted(edges)), key=len)
    return len(top), top


def runtime(modules: dict[str, Module]) -> dict[str, Module]:
    """What a worker may import: the package less the command, the testing kit, conformance."""
    return {n: m for n, m in modules.items() if not n.startswith(ON_TOP)}


def functions(module: Module) -> Iterator[tuple[str, int]]:
    """Every function or method with its length in lines (decorators and docstring included)."""
    for node in ast.walk(module.tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            yield f"{module.name}:{node.lineno} {node.name}", (node.end_lineno or node.lineno) - start + 1


_SLEEPERS = {("time", "sleep"), ("random", "*"), ("gevent", "sleep"), ("eventlet", "sleep")}


def sleepers(module: Module) -> list[str]:
    """How a module sleeps or draws random numbers (jitter): the uses found, empty when none."""
    found: list[str] = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "random"]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module, alias.name) in _SLEEPERS or (node.module, "*") in _SLEEPERS:
                    found.append(f"{node.module}.{alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in _SLEEPERS
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def foreign_private_attributes(module: Module) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls`` and the module defines no ``_name`` itself.

    A heuristic (no types are known here): another object's private attribute read or written
    from outside its class's module, such as ``client._base``.
    """
    defined: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            defined.add(node.attr)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    found = set()
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            and node.attr not in defined
        ):
            found.add(f"{module.name}: .{node.attr}")
    return sorted(found)


#: Calls whose result is a value nobody changes: a module may bind them freely.
_IMMUTABLE_CALLS = {"compile", "getLogger", "get_logger", "TypeVar", "frozenset", "tuple", "object", "hexdigest"}
#: Methods that change a container or take a lock in place.
_MUTATORS = {
    "add",
    "append",
    "extend",
    "insert",
    "update",
    "setdefault",
    "pop",
    "popitem",
    "clear",
    "remove",
    "discard",
    "move_to_end",
    "acquire",
}


def _top_bindings(module: Module) -> dict[str, ast.expr | None]:
    """Every name bound at the top of a module, with the value bound (None: ``global`` rebinding)."""
    bound: dict[str, ast.expr | None] = {}
    for node in module.tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            bound[node.target.id] = node.value
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Global):
            for name in node.names:
                bound[name] = None
    return bound


def _mutated_in(module: Module) -> set[str]:
    """Top-level names the module changes in place: ``x[k] = v``, ``del x[k]``, ``x += ...``, ``x.add(...)``."""
    found: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
            if isinstance(node.value, ast.Name):
                found.add(node.value.id)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            found.add(node.target.id)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MUTATORS
            and isinstance(node.func.value, ast.Name)
        ):
            found.add(node.func.value.id)
        elif isinstance(node, ast.With):
            for item in node.items:  # ``with _lock:`` takes a module's lock
                if isinstance(item.context_expr, ast.Name):
                    found.add(item.context_expr.id)
    return found


def _plainly_constant(value: ast.expr) -> bool:
    """A literal, an alias of another name, a type expression, or a call known to build a value nobody changes."""
    if isinstance(value, (ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.BinOp, ast.JoinedStr)):
        return True
    if isinstance(value, ast.Tuple):
        return all(_plainly_constant(e) for e in value.elts)
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name in _IMMUTABLE_CALLS
    return False


#: How a module declares a slot of the process state (``s3result.s3.process``).
_SLOT_DECLARATIONS = ("slot", "store_slot")


def _slot_declaration(value: ast.expr | None) -> ast.Call | None:
    """``PROCESS.slot(...)`` or ``PROCESS.store_slot(...)``: the call, else None."""
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in _SLOT_DECLARATIONS
        and isinstance(value.func.value, ast.Name)
        and value.func.value.id == "PROCESS"
    ):
        return value
    return None


def slots(module: Module) -> dict[str, str]:
    """The slots of the process state a module declares: name -> fate (``fork=``), as written."""
    found: dict[str, str] = {}
    for value in _top_bindings(module).values():
        call = _slot_declaration(value)
        if call is None:
            continue
        name = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else "?"
        fate = next((k.value for k in call.keywords if k.arg == "fork"), None)
        found[str(name)] = fate.value if isinstance(fate, ast.Constant) else "?"
    return found


def module_state(module: Module) -> list[str]:
    """The module's mutable process-wide state kept outside the owner: ``module:name`` for each global.

    A name counts when a function rebinds it (``global``), when the module changes it in place
    (an item set or deleted, ``+=``, a mutating method, ``with name:``), when it is a container
    not named in capitals (a table of constants is), or when its value is not plainly a constant
    (a lock, a thread-local, an object built by a call). A slot of the process state
    (``PROCESS.slot(...)``, see ``slots``) is the owner's, not the module's: it does not count.
    """
    mutated = _mutated_in(module)
    found = []
    for name, value in _top_bindings(module).items():
        if name in ("__all__", "logger") or _slot_declaration(value) is not None:
            continue
        if value is None or name in mutated:
            found.append(name)
        elif isinstance(value, (ast.Dict, ast.Set, ast.List, ast.DictComp, ast.SetComp, ast.ListComp)):
            if name.lstrip("_") != name.lstrip("_").upper():
                found.append(name)  # a table of constants is named in capitals (and changed by nobody)
        elif not _plainly_constant(value):
            found.append(name)
    return sorted(f"{module.name}:{n}" for n in found)


def report(modules: dict[str, Module]) -> str:
    """The figures issue 30 names, one per line."""
    rt = runtime(modules)
    big = sorted(((m.lines, n) for n, m in rt.items() if m.lines > 400), reverse=True)
    long = sorted(((n, f) for m in rt.values() for f, n in functions(m) if n > 60), reverse=True)
    private = sorted({u for m in modules.values() for u in m.private_uses if not u.startswith(m.name + ".")})
    sleepy = {n: sleepers(m) for n, m in rt.items() if sleepers(m)}
    d, chain_ = depth(rt)
    whole, whole_chain = depth(modules)
    state = [s for m in rt.values() for s in module_state(m)]
    declared = {n: f for m in rt.values() for n, f in slots(m).items()}
    lines = [
        f"modules: {len(modules)} ({len(rt)} runtime, {sum(m.lines for m in rt.values())} runtime lines)",
        f"cycles: {len(cycles(modules))} {cycles(modules)}",
        f"imports against the layers: {len(against_layers(modules))} {against_layers(modules)}",
        f"import depth: {d} ({' -> '.join(chain_)})",
        f"import depth with the CLI, testing kit and conformance on top: {whole} ({' -> '.join(whole_chain)})",
        f"runtime modules over 400 lines: {len(big)} {big}",
        f"runtime functions over 60 lines: {len(long)} {long}",
        f"private names used across modules: {len(private)} {private}",
        f"private attributes of other objects: {sum(len(foreign_private_attributes(m)) for m in modules.values())} "
        f"{[u for m in modules.values() for u in foreign_private_attributes(m)]}",
        f"runtime modules that sleep or draw jitter: {len(sleepy)} {sleepy}",
        f"mutable module globals of the runtime outside the process state: {len(state)} {state}",
        f"slots of the process state (s3/process.py): {len(declared)} {declared}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(load()))
