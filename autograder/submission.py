"""Load a submission from whatever the user points at, without trusting it.

Accepted: a directory holding ``mytorch/nn/activation.py`` (a handout or an
unpacked handin) or ``activation.py``; a single ``.py`` file; a ``.tar``,
``.tar.gz``, ``.tgz`` or ``.zip`` archive with either layout (possibly under
one top-level folder); a Jupyter notebook ``.ipynb``.

The submission is read into memory (archives are extracted into a private
temporary directory first, safely) and never modified. Symbolic links are
never followed: a link, even one pointing inside the submission, is refused.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from autograder.runner import SubmissionFiles

MAX_FILE_BYTES = 1 << 20  # one source file
MAX_TOTAL_BYTES = 8 << 20  # all files sent to the worker
MAX_FILES = 200
MAX_ARCHIVE_BYTES = 64 << 20  # uncompressed size of an archive
MAX_ARCHIVE_MEMBERS = 2000
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
EXPECTED = (
    "expected a directory holding mytorch/nn/activation.py or activation.py, a .py file, "
    "a .tar/.tar.gz/.tgz/.zip handin, or an .ipynb notebook"
)


class SubmissionError(Exception):
    """The input cannot be graded; the message is one line for the user."""


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
        return Submission(
            name, "file", SubmissionFiles({"activation.py": data}, "activation.py", "activation")
        )
    if lower.endswith(".ipynb"):
        from autograder.notebook_source import notebook_to_module

        text = notebook_to_module(_read_file(path, limit=MAX_TOTAL_BYTES), path.name)
        files = SubmissionFiles({"activation.py": text.encode()}, "activation.py", "activation")
        return Submission(name, "notebook", files)
    if lower.endswith(ARCHIVE_SUFFIXES):
        with tempfile.TemporaryDirectory(prefix="autograder-unpack-") as tmp:
            _extract(path, Path(tmp))
            return Submission(name, "archive", _from_directory(Path(tmp), archive=path.name))
    raise SubmissionError(f"cannot grade {path.name}: {EXPECTED}")


def _read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    try:
        info = path.lstat()
    except OSError as exc:
        raise SubmissionError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise SubmissionError(f"{path.name} is a symbolic link; submit the file itself")
    if not stat.S_ISREG(info.st_mode):
        raise SubmissionError(f"{path.name} is not a regular file")
    if info.st_size > limit:
        raise SubmissionError(f"{path.name} is {info.st_size} bytes; the limit is {limit}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SubmissionError(f"cannot read {path}: {exc.strerror}") from None


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
        entries = [e for e in directory.iterdir() if not e.name.startswith((".", "__MACOSX"))]
    except OSError:
        return []
    dirs = [e for e in entries if e.is_dir() and not e.is_symlink()]
    return dirs if len(dirs) == 1 else []


def _from_directory(directory: Path, archive: str | None = None) -> SubmissionFiles:
    found = _find_root(directory)
    where = f"the archive {archive}" if archive else str(directory)
    if found is None:
        raise SubmissionError(f"no activation file found in {where}; {EXPECTED}")
    root, layout = found
    if layout == "package":
        entry, module = "mytorch/nn/activation.py", "mytorch.nn.activation"
        candidates = _python_files(root / "mytorch", prefix="mytorch")
    else:
        entry, module = "activation.py", "activation"
        candidates = {p.name: p for p in root.iterdir() if p.suffix == ".py"}
    files: dict[str, bytes] = {}
    total = 0
    for rel, path in sorted(candidates.items()):
        if len(files) >= MAX_FILES:
            break
        if path.is_symlink():
            if rel == entry:
                raise SubmissionError(f"{entry} is a symbolic link; submit the file itself")
            continue
        data = _read_file(path)
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise SubmissionError(f"the submission's Python files exceed {MAX_TOTAL_BYTES} bytes")
        files[rel] = data
    if entry not in files:
        raise SubmissionError(f"cannot read {entry} in {where}")
    return SubmissionFiles(files, entry, module)


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


# ------------------------------------------------------------------ archives


def _check_member_name(name: str, archive: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (name[1:2] == ":"):
        raise SubmissionError(
            f"{archive} holds an unsafe path {name[:80]!r}; refusing to unpack it"
        )


def _extract(path: Path, dest: Path) -> None:
    try:
        if path.name.lower().endswith(".zip"):
            _extract_zip(path, dest)
        else:
            _extract_tar(path, dest)
    except SubmissionError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")
        if isinstance(exc, tarfile.ReadError):
            first = "not a tar archive (or a damaged one)"
        raise SubmissionError(f"cannot unpack {path.name}: {first}") from None


def _extract_tar(path: Path, dest: Path) -> None:
    with tarfile.open(path, mode="r:*") as tar:
        members = []
        total = 0
        for i, member in enumerate(tar):
            if i >= MAX_ARCHIVE_MEMBERS:
                raise SubmissionError(f"{path.name} holds more than {MAX_ARCHIVE_MEMBERS} entries")
            _check_member_name(member.name, path.name)
            if member.islnk() or member.issym():
                # Links are skipped: never followed, never created.
                continue
            if not (member.isfile() or member.isdir()):
                raise SubmissionError(f"{path.name} holds a special file {member.name[:80]!r}")
            total += member.size
            if total > MAX_ARCHIVE_BYTES:
                raise SubmissionError(f"{path.name} unpacks to more than {MAX_ARCHIVE_BYTES} bytes")
            members.append(member)
        # The 'data' filter re-checks every path and strips modes and owners.
        tar.extractall(dest, members=members, filter="data")


def _extract_zip(path: Path, dest: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ARCHIVE_MEMBERS:
            raise SubmissionError(f"{path.name} holds more than {MAX_ARCHIVE_MEMBERS} entries")
        total = 0
        for info in infos:
            _check_member_name(info.filename, path.name)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                continue
            total += info.file_size
            if total > MAX_ARCHIVE_BYTES:
                raise SubmissionError(f"{path.name} unpacks to more than {MAX_ARCHIVE_BYTES} bytes")
        for info in infos:
            if stat.S_ISLNK(info.external_attr >> 16):
                continue
            target = dest / PurePosixPath(info.filename.replace("\\", "/"))
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # Copy at most the declared size: a lying header cannot fill the disk.
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(_Limited(src, info.file_size), dst)


class _Limited:
    def __init__(self, stream, limit: int) -> None:
        self.stream = stream
        self.left = limit

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data = self.stream.read(n)
        self.left -= len(data)
        return data
