"""SECURITY.md names the test that proves each defence: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `tests/x.py::name`, `tests/x.py`, or `::name` (the file named before it on the line).
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_test_security_md_names_exists():
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    checked, missing = 0, []
    for line in text.splitlines():
        current = None
        for match in REFERENCE.finditer(line):
            path, name = match.groups()
            if path is None and name is None:
                continue
            current = path or current
            assert current is not None, f"a `::name` with no file before it: {line}"
            file = ROOT / current
            if not file.is_file():
                missing.append(current)
            elif name and name not in _functions(file):
                missing.append(f"{current}::{name}")
            checked += 1
    assert checked > 30
    assert missing == []
