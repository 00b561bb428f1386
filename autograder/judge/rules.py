"""Source rules such as "Tanh without np.tanh", checked on the syntax tree.

Nothing is executed: the grader parses the student's text with ``ast``. A
forbidden name counts only where it comes from a library (numpy, math,
scipy, torch, ...): ``np.tanh``, ``math.tanh``, ``torch.nn.functional.tanh``,
``from numpy import tanh as th``, ``from numpy import *``, ``getattr(np,
"tanh")``, a module-level alias (``T = np.tanh``) or a lambda around one.
The student's own code is followed wherever the class reaches it: module
functions and lambdas it calls, classes it uses or inherits from, nested
functions, ``eval`` of a constant string. A name the student defined
(a helper ``def tanh``, a local variable ``tanh = ...``) is the student's
code, judged by what it does; so is the word "tanh" in a comment, a
docstring, a string or a class name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Top-level packages whose functions are "ready-made": a forbidden name reached
# through one of them is a violation.
LIBRARIES = frozenset(
    {"numpy", "math", "cmath", "scipy", "torch", "jax", "tensorflow", "mpmath", "sympy"}
)

# What a name is bound to, as far as the rule cares.
_LOCAL = "local"  # a value of the student's (argument, variable, own module)
_LIB_MODULE = "lib-module"  # a library or something taken from one (np, F, special)
_LIB_FORBIDDEN = "lib-forbidden"  # a forbidden function of a library (from numpy import tanh)
_CODE = "code"  # the student's code: a def, a class, a lambda, an assigned expression


@dataclass
class _Binding:
    kind: str
    node: ast.AST | None = None  # for _CODE: what to follow


Scope = dict[str, _Binding]


def _library_root(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in LIBRARIES


class _Finder:
    """Walks the student's code reachable from one class, collecting violations."""

    def __init__(self, names: set[str], module_scope: Scope) -> None:
        self.names = names
        self.module = module_scope
        # Every module-level binding of a name, in source order: a base class is
        # the one bound where the class statement runs (class Tanh(Tanh) extends
        # the earlier Tanh).
        self.history: dict[str, list[tuple[int, _Binding]]] = {}
        self.found: set[tuple[int, str]] = set()
        self.seen: set[int] = set()

    # ---------------------------------------------------------------- names

    def resolve(self, name: str, scopes: list[Scope]) -> _Binding | None:
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        return self.module.get(name)

    def is_library(self, node: ast.AST, scopes: list[Scope], depth: int = 0) -> bool:
        """Whether ``node`` evaluates to a library or something taken from one."""
        if depth > 20:
            return False
        while isinstance(node, ast.Attribute):
            node = node.value
        if isinstance(node, ast.Name):
            binding = self.resolve(node.id, scopes)
            if binding is None:
                return False
            if binding.kind == _LIB_MODULE:
                return True
            # N = np: N is a library too (a method's alias may refer to its own scope).
            if binding.kind == _CODE and isinstance(binding.node, ast.Name | ast.Attribute):
                outer = [] if binding is self.module.get(node.id) else scopes
                return self.is_library(binding.node, outer, depth + 1)
            return False
        if isinstance(node, ast.Call) and node.args:
            # __import__("numpy"), importlib.import_module("numpy")
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            return (
                called in ("__import__", "import_module")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _library_root(first.value)
            )
        return False

    # ---------------------------------------------------------------- scopes

    def _bind_import(self, scope: Scope, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                kind = _LIB_MODULE if _library_root(alias.name) else _LOCAL
                scope[name] = _Binding(kind)
            return
        library = node.level == 0 and _library_root(node.module)
        for alias in node.names:
            if alias.name == "*":
                if library:
                    for forbidden in self.names:
                        scope[forbidden] = _Binding(_LIB_FORBIDDEN)
                continue
            name = alias.asname or alias.name
            if not library:
                scope[name] = _Binding(_LOCAL)
            elif alias.name in self.names:
                scope[name] = _Binding(_LIB_FORBIDDEN)
            else:
                scope[name] = _Binding(_LIB_MODULE)

    def function_scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> Scope:
        """The names a function binds itself (arguments, assignments, imports, defs)."""
        scope: Scope = {}
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                scope[arg.arg] = _Binding(_LOCAL)
        if isinstance(node, ast.Lambda):
            return scope
        declared_global: set[str] = set()
        todo: list[ast.AST] = list(node.body)
        while todo:
            sub = todo.pop()
            if isinstance(sub, ast.Global | ast.Nonlocal):
                declared_global.update(sub.names)
            elif isinstance(sub, ast.Import | ast.ImportFrom):
                self._bind_import(scope, sub)
            elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                scope[sub.name] = _Binding(_CODE, sub)
                continue  # its body is its own scope
            elif isinstance(sub, ast.Lambda):
                continue
            elif isinstance(sub, ast.Assign) and isinstance(sub.value, ast.Name | ast.Attribute):
                # N = np inside a method: N.tanh is still np.tanh.
                for target in sub.targets:
                    if isinstance(target, ast.Name):
                        scope[target.id] = _Binding(_CODE, sub.value)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store | ast.Del):
                scope.setdefault(sub.id, _Binding(_LOCAL))
            todo.extend(ast.iter_child_nodes(sub))
        for name in declared_global:
            scope.pop(name, None)
        return scope

    # ---------------------------------------------------------------- walking

    def follow(self, node: ast.AST | None) -> None:
        """Walk a piece of the student's module-level code (once)."""
        if node is None or id(node) in self.seen:
            return
        self.seen.add(id(node))
        self.walk(node, [])

    def flag(self, node: ast.AST, text: str | None = None) -> None:
        self.found.add((getattr(node, "lineno", 0), text or ast.unparse(node)))

    def walk(self, node: ast.AST, scopes: list[Scope]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.walk(default, scopes)
            if not isinstance(node, ast.Lambda):
                for decorator in node.decorator_list:
                    self.walk(decorator, scopes)
            inner = [*scopes, self.function_scope(node)]
            body = [node.body] if isinstance(node, ast.Lambda) else node.body
            for statement in body:
                self.walk(statement, inner)
            return
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                earlier = self._bound_before(base, node.lineno) if not scopes else None
                if earlier is not None:
                    self.follow(earlier.node)
                else:
                    self.walk(base, scopes)
            for expr in [*node.decorator_list, *(k.value for k in node.keywords)]:
                self.walk(expr, scopes)
            # Methods do not see the class body's names; its statements run in it.
            for statement in node.body:
                self.walk(statement, scopes)
            return
        if isinstance(node, ast.Attribute) and node.attr in self.names:
            if self.is_library(node.value, scopes):
                self.flag(node)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            binding = self.resolve(node.id, scopes)
            if binding is not None and binding.kind == _LIB_FORBIDDEN:
                self.flag(node, node.id)
            elif binding is not None and binding.kind == _CODE:
                if binding is self.module.get(node.id):
                    self.follow(binding.node)
                elif id(binding.node) not in self.seen:
                    self.seen.add(id(binding.node))
                    self.walk(binding.node, scopes)  # a nested def: it sees our scopes
        elif isinstance(node, ast.Call):
            self._call(node, scopes)
        elif isinstance(node, ast.Subscript):
            # np.__dict__["tanh"], vars(np)["tanh"]
            key = node.slice
            if (
                isinstance(key, ast.Constant)
                and key.value in self.names
                and any(
                    self.is_library(sub, scopes)
                    for sub in ast.walk(node.value)
                    if isinstance(sub, ast.Name)
                )
            ):
                self.flag(node)
        for child in ast.iter_child_nodes(node):
            self.walk(child, scopes)

    def _bound_before(self, node: ast.AST, line: int) -> _Binding | None:
        """The student's code a module-level name was bound to before ``line``, if any."""
        if not isinstance(node, ast.Name):
            return None
        earlier = [b for at, b in self.history.get(node.id, []) if at < line]
        if earlier and earlier[-1].kind == _CODE:
            return earlier[-1]
        return None

    def _call(self, node: ast.Call, scopes: list[Scope]) -> None:
        func = node.func
        args = node.args
        text = args[1] if len(args) > 1 else None
        # getattr(np, "tanh"), np.__getattribute__("tanh")
        if isinstance(func, ast.Name) and func.id == "getattr" and text is not None:
            if self._is_name_constant(text) and self.is_library(args[0], scopes):
                self.flag(node)
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in ("__getattribute__", "__getattr__")
            and args
            and self._is_name_constant(args[0])
            and self.is_library(func.value, scopes)
        ):
            self.flag(node)
        # eval("np.tanh(Z)"): the string is code; judge it like the rest.
        if isinstance(func, ast.Name) and func.id in ("eval", "exec") and args:
            first = args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                try:
                    tree = ast.parse(first.value, mode="eval" if func.id == "eval" else "exec")
                except SyntaxError:
                    return
                for sub in ast.walk(tree):
                    if hasattr(sub, "lineno"):
                        sub.lineno = node.lineno  # report the line of the eval
                self.walk(tree, scopes)

    def _is_name_constant(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and node.value in self.names


class _History(dict):
    """A module scope that also records every binding of each name with its line."""

    def __init__(self, history: dict[str, list[tuple[int, _Binding]]]) -> None:
        super().__init__()
        self.history = history
        self.line = 0

    def __setitem__(self, name: str, binding: _Binding) -> None:
        super().__setitem__(name, binding)
        self.history.setdefault(name, []).append((self.line, binding))


def _module_scope(tree: ast.Module, finder: _Finder) -> Scope:
    """What each module-level name is bound to when the class's methods run (last binding)."""
    scope = _History(finder.history)

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            scope.line = node.lineno
            if isinstance(node, ast.Import | ast.ImportFrom):
                finder._bind_import(scope, node)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                scope[node.name] = _Binding(_CODE, node)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        # Walking the value later judges it: np.tanh, a lambda, a helper.
                        scope[target.id] = _Binding(_CODE, node.value)
                    else:
                        for sub in ast.walk(target):
                            if isinstance(sub, ast.Name):
                                scope[sub.id] = _Binding(_CODE, node.value)
            elif isinstance(node, ast.For | ast.AsyncFor | ast.With | ast.AsyncWith):
                targets = (
                    [node.target]
                    if isinstance(node, ast.For | ast.AsyncFor)
                    else [i.optional_vars for i in node.items if i.optional_vars is not None]
                )
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            scope[sub.id] = _Binding(_LOCAL)
                visit(node.body)
            elif isinstance(node, ast.If | ast.While):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return dict(scope)


def violations(source: str, class_name: str, names: tuple[str, ...]) -> list[str] | None:
    """Where class ``class_name`` uses a forbidden library name: ``["line 12: np.tanh", ...]``.

    Returns None when the class is not in the source (nothing to judge).
    Raises SyntaxError when the source does not parse.
    """
    tree = ast.parse(source)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    if not classes:
        return None
    finder = _Finder(set(names), {})
    finder.module = _module_scope(tree, finder)
    # Module-level statements that are not definitions run once at import: a
    # class patched from outside (Tanh.forward = np.tanh) counts too.
    finder.follow(classes[-1])  # the last definition is the one Python keeps
    for node in tree.body:
        if _patches(node, class_name):
            finder.follow(node)
    return [f"line {line}: {text}" for line, text in sorted(finder.found)]


def _patches(node: ast.stmt, class_name: str) -> bool:
    """Whether a module-level statement assigns to an attribute of the class (Tanh.forward = ...)."""
    if not isinstance(node, ast.Assign | ast.AnnAssign):
        return False
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(
        isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == class_name
        for t in targets
    )
