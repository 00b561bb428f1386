"""Where the package and the project live on disk, and the one way files are written.

The bottom layer: every other part may import it, and it imports nothing of
the package. ``platform_run.py`` (the platform bundles' launcher) keeps a copy
of :func:`write_atomic` on purpose: it must write a result even when this
package cannot be imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The repository (instructor side) or the unpacked bundle: the folder holding the package.
PROJECT_ROOT = PACKAGE_DIR.parent
# The reference implementation (instructor side only); instructors can point elsewhere.
REFERENCE_PATH = PROJECT_ROOT / "solutions" / "mytorch" / "nn" / "activation.py"
REFERENCE_ENV = "AUTOGRADER_REFERENCE"


def reference_path() -> Path | None:
    """The reference file, or None where it is not available (student bundle)."""
    override = os.environ.get(REFERENCE_ENV)
    path = Path(override) if override else REFERENCE_PATH
    return path if path.is_file() else None


def package_files(*patterns: str) -> list[Path]:
    """The package's files matching any of ``patterns`` (e.g. ``"*.py"``), in every
    folder, sorted, caches left out."""
    found = {
        path
        for pattern in patterns
        for path in PACKAGE_DIR.rglob(pattern)
        if "__pycache__" not in path.parts and path.is_file()
    }
    return sorted(found)


def write_atomic(path: Path, content: str | bytes, mode: int | None = None) -> None:
    """Write ``content`` to ``path`` so that no reader ever sees a partial file.

    Text is written as UTF-8 with ``\\n`` line ends. ``mode``: the file's
    permissions (default: the usual ones, 0666 minus the umask). The parent
    folder is created if needed; on any failure nothing is left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if isinstance(content, str):
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(content)
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
        if mode is None:
            # mkstemp creates 0600; give the file the usual permissions.
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
