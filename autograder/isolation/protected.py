"""What student code must never reach, as paths: the input of every level's self-check.

The reference solution, the hidden cases, every file of expected values (the
reference-output cache, the platform bundles' case data, built bundles), and
whatever the caller adds (other submissions, report and results files). The
``uid`` level also covers these in its private mount namespace, together
with the grader's whole project directory.

Standard library only, so the command line can compute it before the heavy
imports, while the worker starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from autograder import files

PACKAGE_DIR = files.PACKAGE_DIR
PROJECT_ROOT = files.PROJECT_ROOT
HIDDEN_CASES = PACKAGE_DIR / "course" / "hidden_cases.py"
CACHE_DIR = PROJECT_ROOT / "build" / "cache"
ALL_CASES = PACKAGE_DIR / "course" / "data" / "all_cases.json"
DIST_DIR = PROJECT_ROOT / "dist"
# Modules a child must be able to import that the zygote does not preload: proof
# that the whole Python runtime (its lib-dynload included) is reachable.
RUNTIME_IMPORTS = ("glob", "unicodedata", "statistics")


def reference_file() -> Path:
    """Where the reference is expected (it may not exist: student bundle)."""
    override = os.environ.get(files.REFERENCE_ENV)
    return Path(override) if override else files.REFERENCE_PATH


@dataclass
class Protected:
    """Paths student code may neither read (``read``) nor write (``write``).

    ``cover`` are the directories the uid level hides in its mount namespace.
    """

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    cover: list[str] = field(default_factory=list)

    def secrets_exist(self) -> bool:
        """Whether anything worth protecting is on disk here."""
        return bool(self.read or self.write)


def _existing(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        if path.exists() and str(path) not in found:
            found.append(str(path))
    return found


def protected(read: list[str] = (), write: list[str] = ()) -> Protected:  # type: ignore[assignment]
    """The protected paths of this installation, plus ``read`` and ``write`` extras.

    ``read``: more paths student code must not read (other submissions,
    ``--protect`` files); ``write``: paths it must not write or create
    (report files, results directories).
    """
    reference = reference_file()
    secrets = [reference, reference.parent, HIDDEN_CASES, ALL_CASES, CACHE_DIR, DIST_DIR]
    if CACHE_DIR.is_dir():
        secrets += sorted(CACHE_DIR.iterdir())
    for extra in read:
        secrets.append(Path(extra))
    readable = _existing([p.resolve() for p in secrets])
    writable = [str(Path(p).resolve()) for p in write]
    cover = _existing([PROJECT_ROOT, PACKAGE_DIR, reference.parent, CACHE_DIR, DIST_DIR])
    cover += [p for p in readable if p not in cover]
    for p in writable:
        target = p if os.path.isdir(p) else os.path.dirname(p)
        if target not in cover:
            cover.append(target)
    return Protected(read=readable, write=writable, cover=cover)
