"""Read a handin archive into memory under limits, trusting none of its bytes.

A handin is a tar (plain or gzip-compressed) or a zip; which one is read from
its first bytes, not from its name. Only regular files are listed, and only
the ones the caller asks for are kept in memory (the loader keeps small
``.py`` files). Nothing is written to disk: no link can be followed or
created, no file can land outside a folder, nothing is left behind.

Every limit applies before the work it bounds: the archive's size, the
unpacked size of each member and of all of them, the number of entries, the
size of each extended header (PAX records, GNU long names), the size of a
zip's central directory, and the compression ratio. A gzip stream is read in
bounded pieces and abandoned at the first cap.

Python's ``tarfile`` and ``zipfile`` parse attacker-sized metadata before a
caller can cap anything: a 4 KB ``.tgz`` whose PAX header is 4 MB of digits
kept ``tarfile`` busy for minutes, a 1 KB one holding a 1.5 GB PAX header
took 3 GB of memory, a chain of GNU long-name headers overflows its
recursion, and a 64 MB zip of empty entries took 530 MB just to open. Their
safety features also differ between 3.11.x releases (the extraction
``filter`` arrived in 3.11.4). The parts of both formats a handin uses are
small, so they are read here, strictly, and everything else is refused with
one line.
"""

from __future__ import annotations

import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from autograder.submission.open_file import FileRefused, open_regular

MAX_ARCHIVE_BYTES = 64 << 20  # the archive file, and all its members unpacked
MAX_MEMBER_BYTES = 16 << 20  # one member unpacked
MAX_ARCHIVE_MEMBERS = 2000  # files, folders and links
MAX_HEADER_BYTES = 8 << 10  # one PAX header, GNU long name or long link
MAX_HEADERS_BYTES = 4 << 20  # all of them together
MAX_NAME_CHARS = 4096  # one member's path
MAX_GZIP_MEMBERS = 64  # gzip streams joined end to end (a handin has one)
MAX_CENTRAL_BYTES = 1 << 20  # a zip's central directory
MAX_RATIO = 100  # unpacked bytes per packed byte, checked past RATIO_FLOOR
RATIO_FLOOR = 1 << 20
# Headers and padding a tar stream may hold on top of its members' data.
TAR_OVERHEAD_BYTES = 8 << 20

_CHUNK = 64 << 10
_BLOCK = 512


class ArchiveError(ValueError):
    """The archive cannot be read safely; the message is one line for the user."""


@dataclass
class Member:
    """A regular file of the archive: its size, and its bytes when kept."""

    size: int
    data: bytes | None


@dataclass
class Contents:
    """What an archive holds: regular files by normalized path, and folders.

    The folders are those the archive lists, and the top folder of every file.
    """

    files: dict[str, Member] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)


Keep = Callable[[str, int], bool]


def read(path: Path, keep: Keep) -> Contents:
    """List ``path``'s regular files, keeping the bytes of those ``keep(name, size)`` accepts.

    Raises :class:`ArchiveError` with a one-line reason for anything that is
    not a well-formed archive within the limits.
    """
    name = path.name
    try:
        raw, size = open_regular(path, MAX_ARCHIVE_BYTES)
    except FileRefused as exc:
        raise ArchiveError(str(exc)) from None
    with raw:
        try:
            magic = raw.read(6)
            raw.seek(0)
            if magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
                return _Zip(raw, size, name, keep).read()
            if magic.startswith((b"BZh", b"\xfd7zXZ\x00")):
                kind = "bzip2" if magic.startswith(b"BZh") else "xz"
                raise ArchiveError(
                    f"{name} is compressed with {kind}; make the handin with tar or tar -z, or zip"
                )
            if magic.startswith(b"\x1f\x8b"):
                stream = _Stream(_Gunzip(raw, name), name, packed=size)
            elif name.lower().endswith(".zip"):
                raise ArchiveError(f"cannot unpack {name}: not a zip archive (or a damaged one)")
            else:
                stream = _Stream(raw, name, packed=None)
            return _read_tar(stream, name, keep)
        except ArchiveError:
            raise
        except (OSError, zlib.error) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise ArchiveError(f"cannot unpack {name}: {first}") from None


def _unsafe(archive: str, name: str) -> ArchiveError:
    return ArchiveError(f"{archive} holds an unsafe path {name[:80]!r}; refusing to unpack it")


def _normalize(raw: str, archive: str) -> str:
    """A member's path, relative and normalized ('' for the archive's top folder)."""
    if len(raw) > MAX_NAME_CHARS:
        raise ArchiveError(f"{archive} holds a path of {len(raw)} characters {raw[:40]!r}...")
    text = raw.replace("\\", "/")
    pure = PurePosixPath(text)
    if "\0" in text or pure.is_absolute() or ".." in pure.parts or text[1:2] == ":":
        raise _unsafe(archive, raw)
    return "/".join(part for part in pure.parts if part != ".")


class _Listing:
    """Members as they are read, with the count, size and duplicate checks."""

    def __init__(self, archive: str) -> None:
        self.archive = archive
        self.contents = Contents()
        self.members = 0
        self.unpacked = 0
        self.names: set[str] = set()  # files checked, kept or not yet read

    def count(self) -> None:
        self.members += 1
        if self.members > MAX_ARCHIVE_MEMBERS:
            raise ArchiveError(f"{self.archive} holds more than {MAX_ARCHIVE_MEMBERS} entries")

    def add_dir(self, name: str) -> None:
        if name:
            self.contents.dirs.add(name)

    def check_file(self, name: str, size: int) -> None:
        """Refuse a file before any of its data is read."""
        if not name:
            raise _unsafe(self.archive, name)
        if name in self.names:
            raise ArchiveError(f"{self.archive} holds two entries named {name[:80]!r}")
        self.names.add(name)
        if size > MAX_MEMBER_BYTES:
            raise ArchiveError(
                f"{self.archive}: {name[:80]!r} is {size} bytes; the limit is {MAX_MEMBER_BYTES}"
            )
        self.unpacked += size
        if self.unpacked > MAX_ARCHIVE_BYTES:
            raise ArchiveError(f"{self.archive} unpacks to more than {MAX_ARCHIVE_BYTES} bytes")

    def add_file(self, name: str, size: int, data: bytes | None) -> None:
        self.contents.files[name] = Member(size, data)
        # Only the top folder is implied: every parent of every deep path would let
        # 2000 entries with 4096-character paths fill the memory.
        top, slash, _ = name.partition("/")
        if slash:
            self.contents.dirs.add(top)


def _ratio_error(archive: str) -> ArchiveError:
    return ArchiveError(
        f"{archive} unpacks to more than {MAX_RATIO} times its packed size; "
        "refusing a likely decompression bomb"
    )


# ----------------------------------------------------------------------- tar


class _Reader(Protocol):
    def read(self, n: int, /) -> bytes: ...


class _Gunzip:
    """The bytes of a gzip stream, decompressed in bounded pieces.

    zlib parses the gzip headers in C: ``gzip.GzipFile`` reads a header's file
    name one byte at a time in Python (3 s of CPU for a 50 MB name) and spends
    Python work on each member of a stream (8 s for 50 MB of empty members).
    """

    def __init__(self, raw: BinaryIO, archive: str) -> None:
        self.raw = raw
        self.archive = archive
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.members = 1
        self.input = b""  # compressed bytes not yet taken by the inflater

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; b"" only at the end of the stream."""
        while True:
            if self.inflater.eof:
                rest = self.inflater.unused_data or self.raw.read(_CHUNK)
                if not rest:
                    return b""
                self.members += 1
                if self.members > MAX_GZIP_MEMBERS:
                    raise ArchiveError(
                        f"{self.archive} joins more than {MAX_GZIP_MEMBERS} gzip streams"
                    )
                self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.input = rest
            if not self.input:
                self.input = self.raw.read(_CHUNK)
                if not self.input:
                    raise ArchiveError(f"cannot unpack {self.archive}: its gzip data ends early")
            data = self.inflater.decompress(self.input, n)
            self.input = self.inflater.unconsumed_tail
            if data:
                return data


class _Stream:
    """An archive's (decompressed) bytes, read in bounded pieces and counted against the caps."""

    def __init__(self, source: _Reader, archive: str, packed: int | None) -> None:
        self.source = source
        self.archive = archive
        self.packed = packed  # compressed size, None when not compressed
        self.total = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the stream."""
        parts = []
        while n > 0:
            data = self.source.read(min(n, _CHUNK))
            if not data:
                break
            self.total += len(data)
            if self.total > MAX_ARCHIVE_BYTES + TAR_OVERHEAD_BYTES:
                raise ArchiveError(f"{self.archive} unpacks to more than {MAX_ARCHIVE_BYTES} bytes")
            if (
                self.packed is not None
                and self.total > RATIO_FLOOR
                and self.total > self.packed * MAX_RATIO
            ):
                raise _ratio_error(self.archive)
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def exact(self, n: int, what: str) -> bytes:
        data = self.read(n)
        if len(data) < n:
            raise ArchiveError(f"cannot unpack {self.archive}: it ends inside {what}")
        return data

    def skip(self, n: int, what: str) -> None:
        while n > 0:
            step = min(n, _CHUNK)
            self.exact(step, what)
            n -= step


def _padding(size: int) -> int:
    return -size % _BLOCK


def _number(field_: bytes) -> int:
    """A tar number field: octal text, or GNU base-256 for large values."""
    if field_[:1] == b"\x80":
        return int.from_bytes(field_[1:], "big")
    if field_[:1] == b"\xff":
        raise ValueError("negative number")
    text = field_.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    if not all(0x30 <= c <= 0x37 for c in text):
        raise ValueError("not an octal number")
    return int(text, 8)


def _checksum_ok(block: bytes) -> bool:
    try:
        stored = _number(block[148:156])
    except ValueError:
        return False
    # The sum is taken with the checksum field as spaces; old tars summed signed bytes.
    unsigned = sum(block[:148]) + sum(block[156:]) + 8 * 0x20
    signed = sum(struct.unpack("148b", block[:148])) + sum(struct.unpack("356b", block[156:])) + 256
    return stored in (unsigned, signed)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _pax_records(data: bytes, archive: str) -> dict[str, bytes]:
    """Parse ``"<length> <key>=<value>\\n"`` records strictly, in one linear pass."""
    damaged = ArchiveError(f"cannot unpack {archive}: a damaged PAX header")
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # a record starts with a digit: this can only be padding
            if data[pos:].strip(b"\0"):
                raise damaged
            break
        space = data.find(b" ", pos, pos + 20)
        digits = data[pos:space]
        if space < 0 or not digits.isdigit():
            raise damaged
        end = pos + int(digits)
        if end > len(data) or end <= space + 2 or data[end - 1 : end] != b"\n":
            raise damaged
        key, equals, value = data[space + 1 : end - 1].partition(b"=")
        if not equals or not key:
            raise damaged
        records[key.decode("utf-8", "replace")] = value
        pos = end
    return records


def _sparse(records: dict[str, bytes]) -> bool:
    return any(key.startswith("GNU.sparse.") for key in records)


def _read_tar(stream: _Stream, archive: str, keep: Keep) -> Contents:
    listing = _Listing(archive)
    pending: dict[bytes, bytes] = {}  # extended headers ('x', 'L', 'K') for the next entry
    headers = 0
    extended = 0  # bytes of extended headers so far
    while True:
        block = stream.read(_BLOCK)
        if not block and headers:
            break  # no end-of-archive marker: what tar itself accepts
        if len(block) < _BLOCK:
            what = "is empty" if not block else "is not a tar archive (or a damaged one)"
            raise ArchiveError(f"cannot unpack {archive}: it {what}")
        if not block.strip(b"\0"):
            break  # the end-of-archive marker; whatever follows is never read
        headers += 1
        # Every entry may carry a PAX header and two GNU long names; global headers are rare.
        if headers > 4 * MAX_ARCHIVE_MEMBERS:
            raise ArchiveError(f"{archive} holds more than {MAX_ARCHIVE_MEMBERS} entries")
        if not _checksum_ok(block):
            raise ArchiveError(f"cannot unpack {archive}: not a tar archive (or a damaged one)")
        kind = block[156:157]
        try:
            size = _number(block[124:136])
        except ValueError:
            raise ArchiveError(f"cannot unpack {archive}: a damaged header") from None

        if kind in (b"x", b"g", b"L", b"K"):
            if size > MAX_HEADER_BYTES:
                raise ArchiveError(
                    f"{archive} holds an extended header of {size} bytes; "
                    f"the limit is {MAX_HEADER_BYTES}"
                )
            extended += size
            if extended > MAX_HEADERS_BYTES:
                raise ArchiveError(
                    f"{archive} holds more than {MAX_HEADERS_BYTES} bytes of extended headers"
                )
            data = stream.exact(size, "an extended header")
            stream.skip(_padding(size), "an extended header")
            if kind == b"g":
                records = _pax_records(data, archive)
                # A global header may carry a comment (git archive); one that renames or
                # resizes every later entry is not something a handin needs.
                if _sparse(records) or {"path", "size"} & records.keys():
                    raise ArchiveError(f"{archive} holds a global header that changes entries")
                continue
            if kind in pending:
                raise ArchiveError(f"{archive} holds two extended headers of one kind in a row")
            pending[kind] = data
            continue

        listing.count()
        records = _pax_records(pending[b"x"], archive) if b"x" in pending else {}
        long_name = pending.get(b"L")
        pending = {}
        if kind == b"S" or _sparse(records):
            raise ArchiveError(f"{archive} holds a sparse file; make the handin with plain tar")
        if "path" in records and long_name is not None:
            raise ArchiveError(f"{archive} gives one entry two long names")
        if "path" in records:
            raw_name = records["path"].decode("utf-8", "replace")
        elif long_name is not None:
            raw_name = _text(long_name)
        else:
            raw_name = _text(block[0:100])
            prefix = _text(block[345:500])
            if block[257:263] == b"ustar\0" and prefix:
                raw_name = f"{prefix}/{raw_name}"
        if "size" in records:
            # At most 20 digits: int() refuses longer text (4300 digits) with a ValueError.
            if not records["size"].isdigit() or len(records["size"]) > 20:
                raise ArchiveError(f"cannot unpack {archive}: a damaged PAX header")
            size = int(records["size"])
        name = _normalize(raw_name, archive)

        if kind == b"5" or (kind == b"\0" and raw_name.endswith("/")):
            listing.add_dir(name)
        elif kind in (b"0", b"\0", b"7"):
            listing.check_file(name, size)
            if keep(name, size):
                data = stream.exact(size, f"the entry {name[:80]!r}")
                stream.skip(_padding(size), f"the entry {name[:80]!r}")
            else:
                data = None
                stream.skip(size + _padding(size), f"the entry {name[:80]!r}")
            listing.add_file(name, size, data)
        elif kind in (b"1", b"2"):
            pass  # a link: never followed, never created (and it carries no data)
        elif kind in (b"3", b"4", b"6"):
            raise ArchiveError(f"{archive} holds a special file {name[:80]!r}")
        else:
            raise ArchiveError(
                f"{archive} holds {name[:80]!r} of an unsupported entry type {kind!r}"
            )
    if pending:
        raise ArchiveError(f"cannot unpack {archive}: it ends after an extended header")
    return listing.contents


# ----------------------------------------------------------------------- zip

_END = struct.Struct("<4s4H2LH")
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_METHODS = {0: "stored", 8: "deflate"}
_OTHER_METHODS = {9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 95: "xz", 99: "AES"}


@dataclass
class _Entry:
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    packed: int
    size: int
    offset: int


class _Zip:
    """A zip archive read from its central directory, with every entry checked first."""

    def __init__(self, raw: BinaryIO, size: int, archive: str, keep: Keep) -> None:
        self.raw = raw
        self.size = size
        self.archive = archive
        self.keep = keep

    def damaged(self, what: str = "not a zip archive (or a damaged one)") -> ArchiveError:
        return ArchiveError(f"cannot unpack {self.archive}: {what}")

    def at(self, offset: int, n: int) -> bytes:
        self.raw.seek(offset)
        data = self.raw.read(n)
        if len(data) != n:
            raise self.damaged()
        return data

    def directory(self) -> tuple[int, int, int]:
        """(entries, size, offset) of the central directory, zip64 included."""
        tail_size = min(self.size, _END.size + 0xFFFF)  # the end record and its comment
        tail = self.at(self.size - tail_size, tail_size)
        pos = tail.rfind(b"PK\x05\x06")
        while pos >= 0 and pos + _END.size > len(tail):
            pos = tail.rfind(b"PK\x05\x06", 0, pos)
        if pos < 0:
            raise self.damaged()
        _, disk, cd_disk, _, entries, cd_size, cd_offset, _ = _END.unpack_from(tail, pos)
        end_at = self.size - tail_size + pos
        if disk or cd_disk:
            raise self.damaged("it spans several disks")
        if entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
            if end_at < _END64_LOCATOR.size:
                raise self.damaged()
            locator = _END64_LOCATOR.unpack(self.at(end_at - _END64_LOCATOR.size, 20))
            if locator[0] != b"PK\x06\x07" or locator[2] > end_at:
                raise self.damaged()
            record = _END64.unpack(self.at(locator[2], _END64.size))
            if record[0] != b"PK\x06\x06":
                raise self.damaged()
            entries, cd_size, cd_offset = record[7], record[8], record[9]
            end_at = locator[2]
        if entries > MAX_ARCHIVE_MEMBERS:
            raise ArchiveError(f"{self.archive} holds more than {MAX_ARCHIVE_MEMBERS} entries")
        if cd_size > MAX_CENTRAL_BYTES:
            raise ArchiveError(
                f"{self.archive} has a central directory of {cd_size} bytes; "
                f"the limit is {MAX_CENTRAL_BYTES}"
            )
        if cd_offset + cd_size > end_at:
            raise self.damaged()
        return entries, cd_size, cd_offset

    def entries(self) -> tuple[list[_Entry], int]:
        """Every central directory entry, and where the directory starts."""
        count, cd_size, cd_offset = self.directory()
        data = self.at(cd_offset, cd_size)
        found: list[_Entry] = []
        parsed = 0
        pos = 0
        while pos < len(data):
            if pos + _CENTRAL.size > len(data):
                raise self.damaged()
            fields = _CENTRAL.unpack_from(data, pos)
            if fields[0] != b"PK\x01\x02":
                raise self.damaged()
            flags, method = fields[5:7]
            crc, packed, size, name_len, extra_len, comment_len = fields[9:15]
            external, offset = fields[17:19]
            start = pos + _CENTRAL.size
            pos = start + name_len + extra_len + comment_len
            parsed += 1
            if pos > len(data) or parsed > count:
                raise self.damaged()
            raw_name = data[start : start + name_len]
            extra = data[start + name_len : start + name_len + extra_len]
            size, packed, offset = self._zip64(extra, size, packed, offset)
            # Bit 11: the name is UTF-8; otherwise it is code page 437, as zip defines.
            text = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            mode = external >> 16
            if stat.S_ISLNK(mode):
                continue  # a link: never followed, never created
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise ArchiveError(f"{self.archive} holds a special file {text[:80]!r}")
            found.append(_Entry(text, raw_name, flags, method, crc, packed, size, offset))
        if parsed != count:
            raise self.damaged()
        return found, cd_offset

    def _zip64(self, extra: bytes, size: int, packed: int, offset: int) -> tuple[int, int, int]:
        """Sizes and offset from the zip64 extra field, where the 32-bit fields overflowed."""
        pos = 0
        while pos + 4 <= len(extra):
            tag, length = struct.unpack_from("<HH", extra, pos)
            body = extra[pos + 4 : pos + 4 + length]
            pos += 4 + length
            if tag != 1:
                continue
            values = [int.from_bytes(body[i : i + 8], "little") for i in range(0, len(body), 8)]
            wanted = [v == 0xFFFFFFFF for v in (size, packed, offset)]
            if sum(wanted) > len(values):
                raise self.damaged()
            it = iter(values)
            if wanted[0]:
                size = next(it)
            if wanted[1]:
                packed = next(it)
            if wanted[2]:
                offset = next(it)
            break
        return size, packed, offset

    def read(self) -> Contents:
        entries, cd_offset = self.entries()
        listing = _Listing(self.archive)
        kept: list[_Entry] = []
        for entry in entries:
            listing.count()
            name = _normalize(entry.name, self.archive)
            if entry.name.endswith(("/", "\\")):
                listing.add_dir(name)
                continue
            listing.check_file(name, entry.size)
            for unpacked, packed in ((entry.size, entry.packed), (listing.unpacked, self.size)):
                if unpacked > RATIO_FLOOR and unpacked > packed * MAX_RATIO:
                    raise _ratio_error(self.archive)
            entry.name = name
            if self.keep(name, entry.size):
                kept.append(entry)
            else:
                listing.add_file(name, entry.size, None)
        self._check_layout(entries, cd_offset)
        for entry in kept:
            listing.add_file(entry.name, entry.size, self._data(entry, cd_offset))
        return listing.contents

    def _check_layout(self, entries: list[_Entry], cd_offset: int) -> None:
        """Entries must not share data: overlapping entries are how zip bombs multiply."""
        spans = sorted(
            (e.offset, e.offset + _LOCAL.size + len(e.raw_name) + e.packed) for e in entries
        )
        next_starts = [start for start, _ in spans[1:]] + [cd_offset]
        if any(end > start for (_, end), start in zip(spans, next_starts, strict=False)):
            raise ArchiveError(
                f"{self.archive} has overlapping entries; refusing a likely zip bomb"
            )

    def _data(self, entry: _Entry, cd_offset: int) -> bytes:
        label = f"{self.archive}: {entry.name[:80]!r}"
        if entry.flags & 0x41:  # bit 0: encrypted; bit 6: strong encryption
            raise ArchiveError(f"{label} is encrypted; submit an archive without a password")
        if entry.method not in _METHODS:
            method = _OTHER_METHODS.get(entry.method, "unknown")
            raise ArchiveError(
                f"{label} is compressed with method {entry.method} ({method}); "
                "only stored and deflate, what zip tools write by default, are read"
            )
        header = _LOCAL.unpack(self.at(entry.offset, _LOCAL.size))
        name_len, extra_len = header[10], header[11]
        if header[0] != b"PK\x03\x04":
            raise self.damaged(f"no entry at the offset {entry.name[:80]!r} names")
        if self.at(entry.offset + _LOCAL.size, name_len) != entry.raw_name:
            raise self.damaged(f"{entry.name[:80]!r} has two different names")
        start = entry.offset + _LOCAL.size + name_len + extra_len
        if start + entry.packed > cd_offset:
            raise self.damaged()
        if entry.method == 0 and entry.packed != entry.size:
            raise self.damaged(f"{entry.name[:80]!r} does not match its size or checksum")
        self.raw.seek(start)
        data = self._inflate(entry, label) if entry.method == 8 else self.raw.read(entry.packed)
        if len(data) != entry.size or zlib.crc32(data) != entry.crc:
            raise self.damaged(f"{entry.name[:80]!r} does not match its size or checksum")
        return data

    def _inflate(self, entry: _Entry, label: str) -> bytes:
        """Decompress at most one byte more than the header promises."""
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        out = bytearray()
        left = entry.packed
        while left and not inflater.eof:
            chunk = self.raw.read(min(_CHUNK, left))
            if not chunk:
                raise self.damaged()
            left -= len(chunk)
            out += inflater.decompress(chunk, entry.size + 1 - len(out))
            if len(out) > entry.size or inflater.unconsumed_tail:
                raise ArchiveError(f"{label} unpacks to more than its header says")
        return bytes(out)
