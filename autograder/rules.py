"""Source rules such as "Tanh without np.tanh", checked on the syntax tree.

Nothing is executed: the grader parses the student's text with ``ast``. A
rule flags a forbidden name used inside the class (``np.tanh``,
``math.tanh``, ``from numpy import tanh``, ``getattr(np, "tanh")``), also
through module-level aliases (``t = np.tanh``) and module-level helper
functions the class calls. A correct formula from ``np.exp`` never matches,
and neither does the word "tanh" in a comment, a docstring or a class name.
"""

from __future__ import annotations

import ast


def _mentions(node: ast.AST, names: set[str], aliases: set[str]) -> list[tuple[int, str]]:
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in names:
            found.append((sub.lineno, ast.unparse(sub)))
        elif isinstance(sub, ast.Name) and (sub.id in names or sub.id in aliases):
            found.append((sub.lineno, sub.id))
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value in names:
            found.append((sub.lineno, repr(sub.value)))
    return found


def _module_aliases(tree: ast.Module, names: set[str]) -> set[str]:
    """Module-level names bound to a forbidden function."""
    aliases: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in names:
                    aliases.add(alias.asname or alias.name)
        elif (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and node.value is not None
            and _mentions(node.value, names, aliases)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        aliases.add(sub.id)
    return aliases


def violations(source: str, class_name: str, names: tuple[str, ...]) -> list[str] | None:
    """Where class ``class_name`` uses a forbidden name: ``["line 12: np.tanh", ...]``.

    Returns None when the class is not in the source (nothing to judge).
    Raises SyntaxError when the source does not parse.
    """
    tree = ast.parse(source)
    forbidden = set(names)
    aliases = _module_aliases(tree, forbidden)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    if not classes:
        return None
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    todo: list[ast.AST] = [classes[-1]]  # the last definition is the one Python keeps
    while todo:
        node = todo.pop()
        found += _mentions(node, forbidden, aliases)
        # Follow calls into module-level helper functions.
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in functions and sub.id not in seen:
                seen.add(sub.id)
                todo.append(functions[sub.id])
    return [f"line {line}: {text}" for line, text in sorted(set(found))]
