"""Load a submission from whatever the user points at, without trusting it.

Accepted: a directory holding ``mytorch/nn/activation.py`` (a handout or an
unpacked handin) or ``activation.py``; a single ``.py`` file; a ``.tar``,
``.tar.gz``, ``.tgz`` or ``.zip`` archive with either layout (possibly under
one top-level folder); a Jupyter notebook ``.ipynb``.

The submission is read into memory and never modified. Archives are read by
:mod:`autograder.submission.archive`, under limits and without unpacking anything to
disk. Symbolic links are never followed: a link, even one pointing inside the
submission, is refused or skipped. The activation module must be Python text:
an empty file, or one that is binary, is refused with one line.
"""

from __future__ import annotations

import io
import os
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from autograder.submission import archive, notebook_source
from autograder.submission.open_file import FileRefused, open_regular

# One source file. A real activation module is about 15 KB; the grader parses
# the module (rules, notebooks), and Python's parser needs about 600 bytes of
# memory per byte of source, so this also bounds the grader's own memory.
MAX_FILE_BYTES = 256 << 10
MAX_TOTAL_BYTES = 8 << 20  # all files sent to the worker; also a notebook file
MAX_FILES = 200
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
EXPECTED = (
    "expected a directory holding mytorch/nn/activation.py or activation.py, a .py file, "
    "a .tar/.tar.gz/.tgz/.zip handin, or an .ipynb notebook"
)


class SubmissionError(Exception):
    """The input cannot be graded; the message is one line for the user."""


@dataclass
class SubmissionFiles:
    """The files of one submission as the worker will lay them out."""

    files: dict[str, bytes]
    entry: str  # path of the activation module among ``files``
    module: str  # the name it is imported under


@dataclass
class Submission:
    """A submission's files in memory, ready for the worker."""

    name: str
    kind: str  # directory | file | archive | notebook
    files: SubmissionFiles

    @property
    def source(self) -> str:
        """The text of the activation module."""
        return self.files.files[self.files.entry].decode("utf-8", errors="replace")


def submission_name(path: Path) -> str:
    """The submission's name: the entry without its extension(s)."""
    # `.` (or `..`) has no name of its own: use the folder's, not "".
    name = path.resolve().name if path.name in ("", "..") else path.name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip", ".ipynb", ".py"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def load(path: str | os.PathLike[str]) -> Submission:
    """Load a submission, raising :class:`SubmissionError` with a one-line reason."""
    path = Path(path)
    name = submission_name(path)
    if path.is_symlink():
        raise SubmissionError(f"{path} is a symbolic link; give the file or directory itself")
    if not path.exists():
        raise SubmissionError(f"{path} does not exist; {EXPECTED}")
    if path.is_dir():
        return Submission(name, "directory", _from_directory(path))
    lower = path.name.lower()
    if lower.endswith(".py"):
        data = _read_file(path)
        check_source(path.name, data)
        return Submission(
            name, "file", SubmissionFiles({"activation.py": data}, "activation.py", "activation")
        )
    if lower.endswith(".ipynb"):
        text = notebook_module(path)
        files = SubmissionFiles({"activation.py": text.encode()}, "activation.py", "activation")
        return Submission(name, "notebook", files)
    if lower.endswith(ARCHIVE_SUFFIXES):
        return Submission(name, "archive", _from_archive(path))
    raise SubmissionError(f"cannot grade {path.name}: {EXPECTED}")


def notebook_module(path: Path) -> str:
    """The module a notebook's definitions make (what is graded, and what export writes)."""
    data = _read_file(path, limit=MAX_TOTAL_BYTES)
    try:
        return notebook_source.notebook_to_module(data, path.name)
    except notebook_source.NotebookError as exc:
        raise SubmissionError(str(exc)) from None


def check_source(name: str, data: bytes) -> None:
    """Refuse an activation module that is empty or not Python text, with one line."""
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        raise SubmissionError(f"{name} is empty; it should hold the activation classes")
    if b"\0" in data:
        raise SubmissionError(f"{name} holds NUL bytes; it is a binary file, not Python source")
    try:
        # UTF-8 unless the file declares another encoding (PEP 263), as Python reads it.
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        label = "UTF-8" if encoding in ("utf-8", "utf-8-sig") else encoding
        raise SubmissionError(
            f"{name} is not {label} text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8 Python source"
        ) from None
    except (SyntaxError, LookupError) as exc:
        # detect_encoding also says "invalid encoding declaration" for mere non-UTF-8 bytes.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise SubmissionError(
                f"{name} is not UTF-8 text (byte 0x{data[bad.start]:02x} at offset "
                f"{bad.start}); save it as UTF-8 Python source"
            ) from None
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise SubmissionError(f"{name} cannot be read as Python source: {first}") from None


def _read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, never through a link and never more than ``limit``."""
    try:
        file, _ = open_regular(path, limit)
    except FileRefused as exc:
        raise SubmissionError(str(exc)) from None
    with file:
        try:
            data = file.read(limit + 1)
        except OSError as exc:
            raise SubmissionError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:  # it grew after fstat
        raise SubmissionError(f"{path.name} is more than {limit} bytes; the limit is {limit}")
    return data


def _find_root(directory: Path) -> tuple[Path, str] | None:
    """Where the activation module is: (root, layout) or None."""
    for root in (directory, *_single_subdirectory(directory)):
        if (root / "mytorch" / "nn" / "activation.py").exists() or (
            root / "mytorch" / "nn" / "activation.py"
        ).is_symlink():
            return root, "package"
        if (root / "activation.py").exists() or (root / "activation.py").is_symlink():
            return root, "flat"
    return None


def _single_subdirectory(directory: Path) -> list[Path]:
    # A handin archived with its enclosing folder: look one level down.
    try:
        entries = [e for e in directory.iterdir() if not _hidden(e.name)]
    except OSError:
        return []
    dirs = [e for e in entries if e.is_dir() and not e.is_symlink()]
    return dirs if len(dirs) == 1 else []


def _hidden(name: str) -> bool:
    return name.startswith((".", "__MACOSX"))


def _from_directory(directory: Path) -> SubmissionFiles:
    found = _find_root(directory)
    if found is None:
        raise SubmissionError(f"no activation file found in {directory}; {EXPECTED}")
    root, layout = found
    if layout == "package":
        entry, module = "mytorch/nn/activation.py", "mytorch.nn.activation"
        paths = _python_files(root / "mytorch", prefix="mytorch")
    else:
        entry, module = "activation.py", "activation"
        paths = {p.name: p for p in root.iterdir() if p.suffix == ".py"}
    paths[entry] = root / entry  # the walk may stop before reaching it

    def reader(rel: str, path: Path) -> Callable[[], bytes | None]:
        def read() -> bytes | None:
            if path.is_symlink():
                if rel == entry:
                    raise SubmissionError(f"{entry} is a symbolic link; submit the file itself")
                return None  # never read through a link; the file is left out
            return _read_file(path)

        return read

    readers = {rel: reader(rel, path) for rel, path in paths.items()}
    return _collect(readers, entry, module, f"{entry} in {directory}")


def _collect(
    readers: dict[str, Callable[[], bytes | None]], entry: str, module: str, where: str
) -> SubmissionFiles:
    """Read the module's files (the activation module first), within the limits."""
    if entry not in readers:
        raise SubmissionError(f"cannot read {where}")
    files: dict[str, bytes] = {}
    total = 0
    for rel in [entry, *sorted(r for r in readers if r != entry)][:MAX_FILES]:
        data = readers[rel]()
        if data is None:
            continue
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise SubmissionError(f"the submission's Python files exceed {MAX_TOTAL_BYTES} bytes")
        files[rel] = data
    check_source(where, files[entry])
    return SubmissionFiles(files, entry, module)


def _from_archive(path: Path) -> SubmissionFiles:
    """The module's files from an archive read in memory (see :mod:`autograder.submission.archive`)."""
    try:
        contents = archive.read(
            path, keep=lambda name, size: name.endswith(".py") and size <= MAX_FILE_BYTES
        )
    except archive.ArchiveError as exc:
        raise SubmissionError(str(exc)) from None
    where = f"the archive {path.name}"
    files = contents.files
    tops = {name.split("/", 1)[0] for name in [*files, *contents.dirs]}
    top_dirs = [t for t in tops if not _hidden(t) and t in contents.dirs]
    for root in ("", *(f"{d}/" for d in top_dirs if len(top_dirs) == 1)):
        if f"{root}mytorch/nn/activation.py" in files:
            entry, module = "mytorch/nn/activation.py", "mytorch.nn.activation"
            names = [
                n
                for n in files
                if n.startswith(f"{root}mytorch/")
                and n.endswith(".py")
                and not any(p == "__pycache__" or p.startswith(".") for p in n.split("/"))
            ]
            break
        if f"{root}activation.py" in files:
            entry, module = "activation.py", "activation"
            names = [n for n in files if n.startswith(root) and "/" not in n[len(root) :]]
            names = [n for n in names if n.endswith(".py")]
            break
    else:
        raise SubmissionError(f"no activation file found in {where}; {EXPECTED}")

    def reader(name: str) -> Callable[[], bytes | None]:
        def read() -> bytes | None:
            member = files[name]
            if member.data is None:
                raise SubmissionError(
                    f"{name} in {where} is {member.size} bytes; the limit is {MAX_FILE_BYTES}"
                )
            return member.data

        return read

    readers = {name[len(root) :]: reader(name) for name in names}
    return _collect(readers, entry, module, f"{entry} in {where}")


def _python_files(directory: Path, prefix: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
        rel_dir = PurePosixPath(prefix) / PurePosixPath(
            Path(dirpath).relative_to(directory).as_posix()
        )
        for filename in filenames:
            if filename.endswith(".py"):
                found[str(rel_dir / filename)] = Path(dirpath) / filename
        if len(found) > MAX_FILES:
            break
    return found
