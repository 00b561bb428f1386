"""Opening a file of a submission: the one way, for single files and archives alike.

The checks are made on the open descriptor, so what is checked is what is
read even if the path changes meanwhile: never through a symbolic link
(``O_NOFOLLOW``), never blocking (``O_NONBLOCK``: a FIFO named ``handin.tar``
is refused, not waited on), only a regular file, and never one larger than
the caller's limit.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


class FileRefused(ValueError):
    """The file cannot be read as a submission's file; the message is one line."""


def open_regular(path: Path, limit: int) -> tuple[BinaryIO, int]:
    """``path`` opened for reading, with its size; :class:`FileRefused` otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRefused(f"{path.name} is a symbolic link; submit the file itself") from None
        raise FileRefused(f"cannot read {path}: {exc.strerror}") from None
    file = open(fd, "rb")  # noqa: SIM115 (the caller closes it; closed here on refusal)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise FileRefused(f"{path.name} is {info.st_size} bytes; the limit is {limit}")
    except BaseException:
        file.close()
        raise
    return file, info.st_size
