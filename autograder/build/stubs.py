"""Turn the reference into student stubs by replacing its solution regions.

A solution region is delimited by marker comments (nbgrader's idea)::

    ### BEGIN SOLUTION
    ...reference code...
    ### STUB
    #| code the student sees instead, one "#| " prefix per line
    ### END SOLUTION

The lines after ``### STUB`` are comments in the reference, so the reference
runs as written; in the handout they lose their ``#| `` prefix and replace the
whole region. A region without a ``### STUB`` part disappears at module level
and becomes ``raise NotImplementedError`` inside a function.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from autograder import files
from autograder.course import course_file

if TYPE_CHECKING:
    from autograder.course.course_file import Course

BEGIN = "### BEGIN SOLUTION"
STUB = "### STUB"
END = "### END SOLUTION"
STUB_PREFIX = "#|"


class MarkerError(ValueError):
    """The reference's solution markers are malformed."""


def _marker(line: str) -> str | None:
    stripped = line.strip()
    return stripped if stripped in (BEGIN, STUB, END) else None


def _unstub(line: str, indent: str, lineno: int) -> str:
    if not line.strip():
        return ""
    if not line.startswith(indent + STUB_PREFIX):
        raise MarkerError(
            f"line {lineno}: a stub line must start with {indent!r} + {STUB_PREFIX!r}: {line.rstrip()!r}"
        )
    rest = line[len(indent) + len(STUB_PREFIX) :]
    if rest.startswith(" "):
        rest = rest[1:]
    return (indent + rest).rstrip() if rest.strip() else ""


def strip_solutions(source: str) -> str:
    """Return ``source`` with every solution region replaced by its stub."""
    out: list[str] = []
    state = "code"
    indent = ""
    stub: list[str] = []
    start = 0
    for lineno, line in enumerate(source.splitlines(), start=1):
        marker = _marker(line)
        if state == "code":
            if marker == BEGIN:
                state, indent, stub, start = (
                    "solution",
                    line[: len(line) - len(line.lstrip())],
                    [],
                    lineno,
                )
            elif marker is not None:
                raise MarkerError(f"line {lineno}: {marker!r} without a preceding {BEGIN!r}")
            else:
                out.append(line.rstrip())
        elif state == "solution":
            if marker == STUB:
                state = "stub"
            elif marker == END:
                out.extend(_default_stub(indent))
                state = "code"
            elif marker == BEGIN:
                raise MarkerError(
                    f"line {lineno}: nested {BEGIN!r} (region opened at line {start})"
                )
        else:  # stub
            if marker == END:
                out.extend(stub)
                state = "code"
            elif marker is not None:
                raise MarkerError(f"line {lineno}: unexpected {marker!r} inside a stub")
            else:
                stub.append(_unstub(line, indent, lineno))
    if state != "code":
        raise MarkerError(f"line {start}: {BEGIN!r} is never closed by {END!r}")
    text = "\n".join(out).strip("\n") + "\n"
    # Removed module-level regions leave runs of blank lines behind.
    return re.sub(r"\n{4,}", "\n\n\n", text)


def _default_stub(indent: str) -> list[str]:
    if not indent:
        return []
    return [f"{indent}raise NotImplementedError  # TODO"]


def solution_lines(source: str) -> list[str]:
    """The stripped, non-trivial code lines found only inside solution regions.

    Used to check that no generated file (handout, notebook, bundle) carries
    reference code. Lines that the reference also gives outside its regions
    (``dLdZ = dLdA * dAdZ`` in Identity) are not secret and are left out.
    """
    inside: list[str] = []
    given: set[str] = set()
    state = "code"
    for line in source.splitlines():
        marker = _marker(line)
        text = line.strip()
        if marker == BEGIN:
            state = "solution"
        elif marker in (STUB, END):
            state = "stub" if marker == STUB else "code"
        elif state == "solution":
            if len(text) >= 12 and not text.startswith("#"):
                inside.append(text)
        elif state == "code":
            given.add(text)
    return [text for text in inside if text not in given]


def keep_classes(source: str, names: tuple[str, ...] | list[str]) -> str:
    """``source`` without its top-level classes not in ``names`` (a course's selection).

    Each removed class goes with its decorators and the blank lines after it;
    imports, helpers and the classes kept stay exactly as written.
    """
    import ast

    keep = set(names)
    lines = source.splitlines(keepends=True)
    drop: list[tuple[int, int]] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name not in keep:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            end = node.end_lineno or node.lineno
            while end < len(lines) and not lines[end].strip():
                end += 1
            drop.append((start, end))
    for start, end in reversed(drop):
        del lines[start:end]
    return "".join(lines)


def stub_text(course: Course | None = None) -> str:
    """The student stubs of the course's classes (default: the course in effect)."""
    course = course or course_file.in_effect()
    source = files.REFERENCE_PATH.read_text(encoding="utf-8")
    return strip_solutions(keep_classes(source, course.names))
