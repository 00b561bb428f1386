"""Loading submissions: every input form, archives and notebooks read under limits, clear errors.

Each defence has an attack test next to an honest twin. The attacks that once
hurt the grader process itself (a PAX header bomb, a gzip bomb, a zip that
opens with hundreds of megabytes, a notebook the parser chokes on) are also
run through the real command line, which must answer with exit status 2 and
exactly one line, quickly, in bounded memory, leaving nothing behind.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from helpers import REFERENCE_SOURCE, handin_tar, write_layout

from autograder import files
from autograder.submission import archive
from autograder.submission import handin as submission
from autograder.submission.handin import SubmissionError
from autograder.submission.notebook_source import NotebookError, _segments, notebook_to_module

ROOT = files.PROJECT_ROOT
SOURCE = REFERENCE_SOURCE.encode()
ENTRY = "mytorch/nn/activation.py"


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """Every test's temporary files go to a private folder, checked empty at the end."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield scratch
    assert list(scratch.iterdir()) == [], "loading left files behind in the temporary folder"


# ---------------------------------------------------------------- layouts


@pytest.mark.parametrize(
    "layout, entry",
    [
        ("package", "mytorch/nn/activation.py"),
        ("flat", "activation.py"),
        ("file", "activation.py"),
        ("tar", "mytorch/nn/activation.py"),
        ("tgz", "mytorch/nn/activation.py"),
        ("targz", "mytorch/nn/activation.py"),
        ("zip", "mytorch/nn/activation.py"),
        ("zip-folder", "mytorch/nn/activation.py"),
    ],
)
def test_layouts_are_found(tmp_path, layout, entry):
    sub = submission.load(write_layout(tmp_path, REFERENCE_SOURCE, layout, name="alice"))
    assert sub.name == "alice"
    assert sub.files.entry == entry
    assert sub.source == REFERENCE_SOURCE


def test_input_is_never_modified(tmp_path):
    path = write_layout(tmp_path, REFERENCE_SOURCE, "package")

    def snapshot():
        return {
            p: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in path.rglob("*")
        }

    before = snapshot()
    submission.load(path)
    assert snapshot() == before


# --------------------------------------------------------- building archives


def _tar(path, members, format=tarfile.USTAR_FORMAT):
    with tarfile.open(path, "w", format=format) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name, data=b"x = 1\n", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def _handin_members(source=SOURCE):
    return [_member("mytorch/__init__.py", b""), _member(ENTRY, source)]


def _block(name: str, size: int, kind: bytes, data: bytes = b"") -> bytes:
    """One raw tar header (any type, any claimed size) and its padded data."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    return header + data + b"\0" * (-len(data) % 512)


def _pax(records: dict[str, str]) -> bytes:
    """PAX records: each starts with its own length, digits included."""
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        length = len(body)
        while len(str(length)) + len(body) != length:
            length += 1
        out += str(length).encode() + body
    return out


def _gzip_of(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(p, compresslevel=9) for p in parts)


def _zip_bytes(entries, method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buffer.getvalue()


def _patch_zip(data: bytes, name: bytes, **fields) -> bytes:
    """Change the central directory fields of one entry (and its local header's)."""
    data = bytearray(data)
    central = {"flags": 8, "method": 10, "crc": 16, "packed": 20, "size": 24}
    local = {"flags": 6, "method": 8, "crc": 14, "packed": 18, "size": 22}
    pos = data.find(b"PK\x01\x02" + b"", 0)
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_len] == name:
            offset = struct.unpack_from("<L", data, pos + 42)[0]
            for key, value in fields.items():
                fmt = "<H" if key in ("flags", "method") else "<L"
                struct.pack_into(fmt, data, pos + central[key], value)
                struct.pack_into(fmt, data, offset + local[key], value)
        pos = data.find(b"PK\x01\x02", pos + 4)
    return bytes(data)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ------------------------------------------------------ paths, links, devices


@pytest.mark.parametrize(
    "members, reason",
    [
        ([_member("../evil.py")], "unsafe path"),
        ([_member("/etc/evil.py")], "unsafe path"),
        ([_member("mytorch/../../evil.py")], "unsafe path"),
        ([_member("C:evil.py")], "unsafe path"),
        ([_member("dev", kind=tarfile.CHRTYPE)], "special file"),
        ([_member("fifo", kind=tarfile.FIFOTYPE)], "special file"),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "drive", "device", "fifo"],
)
def test_unsafe_tar_members_are_refused(tmp_path, members, reason):
    path = _tar(tmp_path / "handin.tar", [*_handin_members(), *members])
    with pytest.raises(SubmissionError, match=reason):
        submission.load(path)
    assert not (tmp_path.parent / "evil.py").exists()


def test_a_pax_path_is_checked_like_a_plain_name(tmp_path):
    # The name in the header is harmless; the PAX record that overrides it is not.
    records = _pax({"path": "../../evil.py"})
    data = (
        _block("././@PaxHeader", len(records), tarfile.XHDTYPE, records)
        + _block("harmless.py", 6, tarfile.REGTYPE, b"x = 1\n")
        + b"\0" * 1024
    )
    with pytest.raises(SubmissionError, match=re.escape("unsafe path '../../evil.py'")):
        submission.load(_write(tmp_path / "handin.tar", data))


@pytest.mark.parametrize(
    "records",
    [
        b"12 size=abc\n",
        b"11 size=-1\n",
        b"5011 size=" + b"9" * 5000 + b"\n",
        b"99 path=x\n",
        b"3 a\n",
        b"9 a=b\n\0\0x",
    ],
    ids=["size-text", "size-negative", "size-5000-digits", "length-past-end", "no-equals", "junk"],
)
def test_damaged_pax_records_are_refused(tmp_path, records):
    data = (
        _block("././@PaxHeader", len(records), tarfile.XHDTYPE, records)
        + _block("activation.py", 6, tarfile.REGTYPE, b"x = 1\n")
        + b"\0" * 1024
    )
    with pytest.raises(SubmissionError, match="a damaged PAX header"):
        submission.load(_write(tmp_path / "h.tar", data))


def test_tar_links_are_never_followed(tmp_path):
    target = tmp_path / "secret.py"
    target.write_text("SECRET = 1\n")
    path = _tar(
        tmp_path / "handin.tar",
        [
            _member("mytorch/nn/activation.py", kind=tarfile.SYMTYPE, linkname=str(target)),
            _member("mytorch/nn/link.py", kind=tarfile.LNKTYPE, linkname="mytorch/nn/x.py"),
        ],
    )
    # The only activation file is a link: it is skipped, so nothing is found.
    with pytest.raises(SubmissionError, match="no activation file"):
        submission.load(path)


def test_zip_path_traversal_is_refused(tmp_path):
    for bad in ("../../escaped.py", "..\\..\\escaped.py", "/abs/escaped.py"):
        path = _write(tmp_path / "handin.zip", _zip_bytes([(ENTRY, SOURCE), (bad, b"x = 1")]))
        with pytest.raises(SubmissionError, match="unsafe path"):
            submission.load(path)
    assert not (tmp_path.parent / "escaped.py").exists()


def test_zip_symlink_to_solutions_is_not_followed(tmp_path):
    path = tmp_path / "handin.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("mytorch/nn/activation.py")
        info.external_attr = 0o120777 << 16  # a symbolic link
        zf.writestr(info, "../../../solutions/mytorch/nn/activation.py")
    with pytest.raises(SubmissionError, match="no activation file"):
        submission.load(path)


def test_directory_symlink_entry_is_refused(tmp_path):
    root = tmp_path / "sub"
    (root / "mytorch" / "nn").mkdir(parents=True)
    secret = tmp_path / "solution.py"
    secret.write_text(REFERENCE_SOURCE)
    os.symlink(secret, root / "mytorch" / "nn" / "activation.py")
    with pytest.raises(SubmissionError, match="symbolic link"):
        submission.load(root)


def test_a_symlinked_helper_module_is_left_out(tmp_path):
    root = write_layout(tmp_path, REFERENCE_SOURCE, "package")
    secret = tmp_path / "solution.py"
    secret.write_text("SECRET = 1\n")
    os.symlink(secret, root / "mytorch" / "nn" / "helper.py")
    sub = submission.load(root)
    assert "mytorch/nn/helper.py" not in sub.files.files
    assert sub.files.files["mytorch/__init__.py"] == b""  # an empty module is still sent


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_duplicate_names_are_refused(tmp_path, kind):
    # Which of two activation.py files would be graded? Neither: the archive is ambiguous.
    evil = SOURCE + b"\nEVIL = 1\n"
    if kind == "tar":
        path = _tar(tmp_path / "h.tar", [_member(ENTRY, SOURCE), _member("./" + ENTRY, evil)])
    else:
        with pytest.warns(UserWarning, match="Duplicate name"):
            data = _zip_bytes([(ENTRY, SOURCE), (ENTRY, evil)])
        path = _write(tmp_path / "h.zip", data)
    with pytest.raises(SubmissionError, match="two entries named"):
        submission.load(path)


def test_repeated_folders_are_fine(tmp_path):
    folder = tarfile.TarInfo("mytorch")
    folder.type = tarfile.DIRTYPE
    path = _tar(tmp_path / "h.tar", [(folder, None), (folder, None), *_handin_members()])
    assert submission.load(path).source == REFERENCE_SOURCE


# ----------------------------------------------------------- header bombs


def test_a_huge_pax_header_is_refused_before_it_is_read(tmp_path):
    # A PAX header of 4 MB of digits in a 4 KB .tgz: tarfile's regular expressions
    # took minutes on it. The size in the header is refused before any byte is read.
    size = 4 << 20
    data = _gzip_of(_block("././@PaxHeader", size, tarfile.XHDTYPE), b"1" * size, b"\0" * 1024)
    assert len(data) < 16 << 10
    with pytest.raises(SubmissionError, match="extended header of 4194304 bytes"):
        submission.load(_write(tmp_path / "pax.tgz", data))


@pytest.mark.parametrize("kind", [tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, b"K"])
def test_every_extended_header_kind_is_capped(tmp_path, kind):
    data = _block("././@LongLink", 1 << 30, kind) + b"\0" * 1024
    with pytest.raises(SubmissionError, match="extended header of 1073741824 bytes"):
        submission.load(_write(tmp_path / "h.tar", data))


def test_long_names_of_a_real_handin_are_read(tmp_path):
    # The honest twin: GNU long names and PAX paths as tar tools write them.
    long_dir = "mytorch/" + "d" * 150
    members = [*_handin_members(), _member(f"{long_dir}/helper.py")]
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        path = _tar(tmp_path / f"h{fmt}.tar", members, format=fmt)
        sub = submission.load(path)
        assert sub.source == REFERENCE_SOURCE
        assert f"{long_dir}/helper.py" in sub.files.files


def test_a_chain_of_long_name_headers_is_refused(tmp_path):
    # tarfile recursed once per header and crashed with RecursionError.
    chain = b"".join(
        _block("././@LongLink", 20, tarfile.GNUTYPE_LONGNAME, b"mytorch/nn/x%05d.py\0" % i)
        for i in range(3000)
    )
    data = _gzip_of(chain + _block(ENTRY, len(SOURCE), tarfile.REGTYPE, SOURCE) + b"\0" * 1024)
    with pytest.raises(SubmissionError, match="two extended headers of one kind in a row"):
        submission.load(_write(tmp_path / "chain.tgz", data))


def test_a_global_header_that_renames_entries_is_refused(tmp_path):
    records = _pax({"path": "mytorch/nn/activation.py"})
    data = (
        _block("pax_global_header", len(records), tarfile.XGLTYPE, records)
        + _block("other.py", 6, tarfile.REGTYPE, b"x = 1\n")
        + b"\0" * 1024
    )
    with pytest.raises(SubmissionError, match="global header"):
        submission.load(_write(tmp_path / "g.tar", data))


def test_a_git_archive_comment_header_is_fine(tmp_path):
    records = _pax({"comment": "0123456789abcdef0123456789abcdef01234567"})
    data = _block("pax_global_header", len(records), tarfile.XGLTYPE, records) + handin_tar(
        REFERENCE_SOURCE
    )
    assert submission.load(_write(tmp_path / "git.tar", data)).source == REFERENCE_SOURCE


@pytest.mark.parametrize("how", ["gnu-type", "pax-records"])
def test_sparse_members_are_refused(tmp_path, how):
    if how == "gnu-type":
        header = bytearray(_block(ENTRY, 10, tarfile.GNUTYPE_SPARSE))
        header[482] = 1  # "more sparse headers follow", and the archive ends: tarfile crashed
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header[:512])
        data = bytes(header)
    else:
        records = _pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})
        data = (
            _block("././@PaxHeader", len(records), tarfile.XHDTYPE, records)
            + _block(ENTRY, 6, tarfile.REGTYPE, b"x = 1\n")
            + b"\0" * 1024
        )
    with pytest.raises(SubmissionError, match="sparse file"):
        submission.load(_write(tmp_path / "sparse.tar", data))


def test_a_gzip_header_is_parsed_at_c_speed(tmp_path):
    # gzip.GzipFile reads a header's file name one byte at a time: 3 s of CPU for 50 MB.
    header = b"\x1f\x8b\x08\x08" + b"\0" * 4 + b"\x00\x03" + b"n" * (50 << 20) + b"\0"
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    tar = handin_tar(REFERENCE_SOURCE)
    deflated = body.compress(tar) + body.flush()
    trailer = struct.pack("<LL", zlib.crc32(tar), len(tar))
    path = _write(tmp_path / "h.tgz", header + deflated + trailer)
    started = time.process_time()
    assert submission.load(path).source == REFERENCE_SOURCE
    assert time.process_time() - started < 1.0


def test_gzip_streams_joined_end_to_end_are_capped(tmp_path):
    tar = handin_tar(REFERENCE_SOURCE)
    two = gzip.compress(tar[:5000]) + gzip.compress(tar[5000:])  # what `cat a.gz b.gz` makes
    assert submission.load(_write(tmp_path / "two.tgz", two)).source == REFERENCE_SOURCE
    many = gzip.compress(b"") * archive.MAX_GZIP_MEMBERS + gzip.compress(tar)
    with pytest.raises(SubmissionError, match=f"more than {archive.MAX_GZIP_MEMBERS} gzip"):
        submission.load(_write(tmp_path / "many.tgz", many))


def test_deep_paths_do_not_multiply_folders(tmp_path):
    # Listing every parent of every path: 2000 paths of 4096 characters took 4 GB.
    members = [_member(f"b{i}/" + "a/" * 1000 + "x.txt") for i in range(50)]
    path = _tar(tmp_path / "deep.tar", members, format=tarfile.PAX_FORMAT)
    contents = archive.read(path, keep=lambda name, size: False)
    assert len(contents.files) == 50 and contents.dirs == {f"b{i}" for i in range(50)}


def test_a_path_too_long_is_refused(tmp_path):
    ok = "mytorch/" + "d/" * 2000 + "x.py"
    assert len(ok) <= archive.MAX_NAME_CHARS
    path = _tar(tmp_path / "ok.tar", [*_handin_members(), _member(ok)], format=tarfile.PAX_FORMAT)
    assert submission.load(path).source == REFERENCE_SOURCE
    long = "d/" * 2100 + "x.py"
    path = _tar(tmp_path / "long.tar", [_member(long)], format=tarfile.PAX_FORMAT)
    with pytest.raises(SubmissionError, match=f"a path of {len(long)} characters"):
        submission.load(path)


def test_extended_headers_are_capped_in_total(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_HEADERS_BYTES", 10000)
    records = _pax({"comment": "c" * 1000})
    header = _block("pax_global_header", len(records), tarfile.XGLTYPE, records)
    ok = header * 9 + handin_tar(REFERENCE_SOURCE)
    assert submission.load(_write(tmp_path / "ok.tar", ok)).source == REFERENCE_SOURCE
    with pytest.raises(SubmissionError, match="more than 10000 bytes of extended headers"):
        submission.load(_write(tmp_path / "h.tar", header * 11 + handin_tar(REFERENCE_SOURCE)))


# ------------------------------------------------------- sizes and counts


def _tgz(path: Path, members) -> Path:
    return _write(path, gzip.compress(_tar(path.with_suffix(".tmp"), members).read_bytes()))


def test_oversized_archive_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_ARCHIVE_BYTES", 13000)
    members = [_member("a.txt", b"a" * 6000), _member("b.txt", b"b" * 6000)]
    assert submission.load(_tgz(tmp_path / "ok.tgz", [*members, _member("activation.py")]))
    members.append(_member("c.txt", b"c" * 1000))
    path = _tgz(tmp_path / "big.tgz", [*members, _member("activation.py")])
    with pytest.raises(SubmissionError, match="unpacks to more than 13000 bytes"):
        submission.load(path)


def test_an_oversized_archive_file_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_ARCHIVE_BYTES", 20000)
    data = _zip_bytes([(ENTRY, SOURCE)], zipfile.ZIP_STORED)
    assert submission.load(_write(tmp_path / "ok.zip", data)).source == REFERENCE_SOURCE
    big = _zip_bytes([(ENTRY, SOURCE), ("noise.bin", os.urandom(5000))], zipfile.ZIP_STORED)
    with pytest.raises(SubmissionError, match=f"big.zip is {len(big)} bytes; the limit is 20000"):
        submission.load(_write(tmp_path / "big.zip", big))


def test_an_oversized_member_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1000)
    ok = _tar(tmp_path / "ok.tar", [_member("data.bin", b"\1" * 1000), _member("activation.py")])
    assert submission.load(ok)
    # A 1 GiB member claimed by a header: refused from the header alone.
    data = _block("data.bin", 1 << 30, tarfile.REGTYPE) + b"\0" * 1024
    with pytest.raises(SubmissionError, match=re.escape("'data.bin' is 1073741824 bytes")):
        submission.load(_write(tmp_path / "big.tar", data))


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_too_many_entries_are_refused(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(archive, "MAX_ARCHIVE_MEMBERS", 5)
    ok = [(f"f{i}.txt", b"") for i in range(4)] + [("activation.py", SOURCE)]
    bad = [*ok, ("f9.txt", b"")]
    for entries, fine in ((ok, True), (bad, False)):
        if kind == "tar":
            path = _tar(tmp_path / "h.tar", [_member(n, d) for n, d in entries])
        else:
            path = _write(tmp_path / "h.zip", _zip_bytes(entries))
        if fine:
            assert submission.load(path).source == REFERENCE_SOURCE
        else:
            with pytest.raises(SubmissionError, match="more than 5 entries"):
                submission.load(path)


def test_a_tar_stream_is_capped_beyond_its_members(tmp_path, monkeypatch):
    # Headers and padding count too: with no room for them, a stream of many
    # small entries stops at the cap.
    monkeypatch.setattr(archive, "TAR_OVERHEAD_BYTES", 0)
    monkeypatch.setattr(archive, "MAX_ARCHIVE_BYTES", 4096)
    path = _tgz(tmp_path / "h.tgz", [_member(f"f{i}.txt", b"x") for i in range(8)])
    with pytest.raises(SubmissionError, match="unpacks to more than 4096 bytes"):
        submission.load(path)


def test_a_gzip_bomb_stops_at_the_ratio_cap(tmp_path):
    # 8 MiB of zeros packed into about 8 KiB: under the size caps, over the ratio.
    zeros = 8 << 20
    data = _gzip_of(_block("data.bin", zeros, tarfile.REGTYPE), b"\0" * zeros, b"\0" * 1024)
    with pytest.raises(SubmissionError, match=f"more than {archive.MAX_RATIO} times"):
        submission.load(_write(tmp_path / "bomb.tgz", data))


def test_a_compressed_handin_with_data_files_is_fine(tmp_path):
    # The honest twin: source text and a little binary data compress far less than 100:1.
    text = (REFERENCE_SOURCE * 100).encode()  # 1.5 MB of text
    members = [
        *_handin_members(),
        _member("notes.txt", text),
        _member("w.npy", os.urandom(1 << 20)),
    ]
    path = _tar(tmp_path / "h.tar", members)
    gz = _write(tmp_path / "h.tgz", gzip.compress(path.read_bytes()))
    assert submission.load(gz).source == REFERENCE_SOURCE


def test_a_zip_bomb_entry_is_refused_by_its_ratio(tmp_path):
    data = _zip_bytes([(ENTRY, SOURCE), ("zeros.bin", b"\0" * (8 << 20))])
    with pytest.raises(SubmissionError, match=f"more than {archive.MAX_RATIO} times"):
        submission.load(_write(tmp_path / "bomb.zip", data))


def test_an_oversized_source_file_is_refused(tmp_path):
    big = SOURCE + b"#" * submission.MAX_FILE_BYTES
    for layout in ("file", "package", "tgz", "zip"):
        with pytest.raises(SubmissionError, match=f"the limit is {submission.MAX_FILE_BYTES}"):
            submission.load(write_layout(tmp_path / layout, big.decode(), layout))


def test_the_activation_module_is_sent_even_after_many_other_files(tmp_path):
    root = write_layout(tmp_path, REFERENCE_SOURCE, "package")
    for i in range(submission.MAX_FILES + 50):
        (root / "mytorch" / f"a{i:03d}.py").write_text("x = 1\n")
    sub = submission.load(root)
    assert sub.files.entry in sub.files.files
    assert len(sub.files.files) == submission.MAX_FILES


# --------------------------------------------------------------- zip quirks


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"flags": 1}, "is encrypted"),
        ({"method": 9}, "method 9 \\(deflate64\\)"),
        ({"method": 99}, "method 99 \\(AES\\)"),
        ({"method": 12}, "method 12 \\(bzip2\\)"),
    ],
    ids=["encrypted", "deflate64", "aes", "bzip2"],
)
def test_zip_members_the_reader_cannot_decode_are_refused(tmp_path, fields, message):
    data = _patch_zip(_zip_bytes([(ENTRY, SOURCE)]), ENTRY.encode(), **fields)
    with pytest.raises(SubmissionError, match=message):
        submission.load(_write(tmp_path / "h.zip", data))


def test_stored_and_deflated_and_zip64_entries_are_read(tmp_path):
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = _write(tmp_path / "h.zip", _zip_bytes([(ENTRY, SOURCE)], method))
        assert submission.load(path).source == REFERENCE_SOURCE
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open(ENTRY, "w", force_zip64=True) as f,
    ):
        f.write(SOURCE)  # force_zip64: sizes in the zip64 extra field
    path = _write(tmp_path / "h64.zip", buffer.getvalue())
    assert submission.load(path).source == REFERENCE_SOURCE


@pytest.mark.parametrize(
    "size, message",
    [(10, "unpacks to more than its header says"), (len(SOURCE) + 1, "size or checksum")],
    ids=["smaller", "larger"],
)
def test_a_zip_with_a_lying_size_is_refused(tmp_path, size, message):
    data = _patch_zip(_zip_bytes([(ENTRY, SOURCE)]), ENTRY.encode(), size=size)
    with pytest.raises(SubmissionError, match=message):
        submission.load(_write(tmp_path / "h.zip", data))


def test_a_zip_with_a_wrong_checksum_is_refused(tmp_path):
    data = _patch_zip(_zip_bytes([(ENTRY, SOURCE)]), ENTRY.encode(), crc=zlib.crc32(b"x"))
    with pytest.raises(SubmissionError, match="size or checksum"):
        submission.load(_write(tmp_path / "h.zip", data))


def _overlapping_zip(count: int) -> bytes:
    """A zip bomb's shape: many central entries that all point at one local entry."""
    packed = zlib.compress(SOURCE)[2:-4]
    crc = zlib.crc32(SOURCE)
    name = b"mytorch/nn/a.py"
    local = struct.pack(
        "<4s2B4HL2L2H",
        b"PK\x03\x04",
        20,
        0,
        0,
        8,
        0,
        0,
        crc,
        len(packed),
        len(SOURCE),
        len(name),
        0,
    )
    body = local + name + packed
    central = b""
    for i in range(count):
        entry = ENTRY.encode() if i == 0 else f"mytorch/nn/c{i:04d}.py".encode()
        central += struct.pack(
            "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 8, 0, 0, crc,
            len(packed), len(SOURCE), len(entry), 0, 0, 0, 0, 0o100644 << 16, 0,
        ) + entry  # fmt: skip
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), len(body), 0)
    return body + central + end


def test_overlapping_zip_entries_are_refused(tmp_path):
    with pytest.raises(SubmissionError, match="overlapping entries"):
        submission.load(_write(tmp_path / "bomb.zip", _overlapping_zip(50)))


def test_a_zip64_bomb_is_refused_from_its_directory(tmp_path):
    # One entry that claims 1 TiB through the zip64 extra field.
    name = b"big.bin"
    extra = struct.pack("<HHQQ", 1, 16, 1 << 40, 1000)
    central = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\x01\x02", 45, 3, 45, 0, 0, 8, 0, 0, 0,
        0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0o100644 << 16, 0,
    ) + name + extra  # fmt: skip
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 45, 0, 0, 8, 0, 0, 0, 0, 0, len(name), 0)
    body = local + name + b"\0" * 1000
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)
    with pytest.raises(SubmissionError, match=re.escape("'big.bin' is 1099511627776 bytes")):
        submission.load(_write(tmp_path / "bomb.zip", body + central + end))


def test_a_zip64_end_record_claiming_many_entries_is_refused_at_once(tmp_path):
    body = _zip_bytes([(ENTRY, SOURCE)])
    cd_at = body.rfind(b"PK\x05\x06")
    records = body[:cd_at]
    cd_offset = struct.unpack_from("<L", body, cd_at + 16)[0]
    end64 = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**9, 10**9, cd_at - cd_offset, cd_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(records), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, *(0xFFFFFFFF,) * 2, 0)
    path = _write(tmp_path / "h.zip", records + end64 + locator + end)
    started = time.monotonic()
    with pytest.raises(SubmissionError, match="more than 2000 entries"):
        submission.load(path)
    assert time.monotonic() - started < 1.0


def test_a_huge_zip_central_directory_is_refused_before_it_is_parsed(tmp_path):
    # zipfile took 530 MB and 9 s just to open a 64 MB zip of empty entries.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(ENTRY, SOURCE)
        for i in range(20):
            info = zipfile.ZipInfo(f"pad{i}.txt")
            info.extra = struct.pack("<HH", 0xCAFE, 60000) + b"\0" * 60000
            zf.writestr(info, b"")
    with pytest.raises(SubmissionError, match="central directory of"):
        submission.load(_write(tmp_path / "h.zip", buffer.getvalue()))


# ---------------------------------------------------- what the bytes say


def test_the_content_decides_between_tar_and_zip(tmp_path):
    zipped = _zip_bytes([(ENTRY, SOURCE)])
    assert submission.load(_write(tmp_path / "a.tgz", zipped)).source == REFERENCE_SOURCE
    tarred = handin_tar(REFERENCE_SOURCE, compress=True)
    assert submission.load(_write(tmp_path / "b.zip", tarred)).source == REFERENCE_SOURCE


@pytest.mark.parametrize("magic, kind", [(b"BZh91AY&SY", "bzip2"), (b"\xfd7zXZ\x00\x00", "xz")])
def test_other_compressions_are_refused_with_a_hint(tmp_path, magic, kind):
    with pytest.raises(SubmissionError, match=f"compressed with {kind}"):
        submission.load(_write(tmp_path / "h.tar", magic + b"\0" * 600))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"\0" * 100, "not a tar archive"),  # shorter than one header
        (handin_tar(REFERENCE_SOURCE)[:1700], "ends inside the entry"),
        (gzip.compress(handin_tar(REFERENCE_SOURCE))[:300], "cannot unpack"),
        (b"\x1f\x8b" + os.urandom(500), "cannot unpack"),
    ],
    ids=["empty", "short", "truncated", "truncated-gzip", "bad-gzip"],
)
def test_damaged_tars_have_a_one_line_reason(tmp_path, data, message):
    with pytest.raises(SubmissionError, match=message) as info:
        submission.load(_write(tmp_path / "h.tgz", data))
    assert "\n" not in str(info.value)


def _fix_checksums(data: bytearray) -> None:
    for offset in range(0, len(data) - 511, 512):
        if data[offset + 257 : offset + 262] == b"ustar":
            data[offset + 148 : offset + 156] = b" " * 8
            data[offset + 148 : offset + 156] = b"%06o\0 " % sum(data[offset : offset + 512])


@pytest.mark.parametrize("kind", ["tar", "tgz", "zip"])
def test_damaged_archives_only_ever_raise_a_one_line_refusal(tmp_path, kind):
    # Seeded random damage to header fields (tar checksums repaired so parsing goes on):
    # whatever the bytes, loading ends in a submission or a SubmissionError, quickly.
    rng = random.Random(kind)
    members = [*_handin_members(), _member("mytorch/" + "d" * 120 + ".py")]
    seed = _tar(tmp_path / "seed.tar", members, format=tarfile.PAX_FORMAT).read_bytes()
    if kind == "zip":
        seed = _zip_bytes([(ENTRY, SOURCE), ("mytorch/__init__.py", b"")])
    values = [
        b"x",
        b"L",
        b"g",
        b"S",
        b"5",
        b"\x80",
        b"\xff",
        b"/",
        b"..",
        b"\0",
        b"9 a=b\n",
        b"\xff" * 4,
    ]
    for i in range(150):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            where = rng.randrange(len(data) if kind == "zip" else 2048)
            value = rng.choice(values)
            data[where : where + len(value)] = value
        if kind != "zip":
            _fix_checksums(data)
        raw = gzip.compress(bytes(data)) if kind == "tgz" else bytes(data)
        path = _write(tmp_path / f"f{i}.{kind}", raw)
        started = time.process_time()
        try:
            submission.load(path)
        except SubmissionError as exc:
            assert "\n" not in str(exc)
        assert time.process_time() - started < 0.5


# ----------------------------------------------------------- the module


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b" \n\t\n", "is empty"),
        (b"\xef\xbb\xbf\n", "is empty"),
        (b"x = 1\0\n", "NUL bytes"),
        (bytes(range(256)) * 10, "NUL bytes"),
        (b"x = '\xe9'\n", "not UTF-8 text \\(byte 0xe9 at offset 5\\)"),
        (b"x = 1\ny = '\xff'\n", "not UTF-8 text \\(byte 0xff at offset 11\\)"),
        (b"# coding: klingon\nx = 1\n", "unknown encoding"),
    ],
    ids=["empty", "blank", "bom-only", "nul", "binary", "latin1", "latin1-line2", "bad-cookie"],
)
@pytest.mark.parametrize("layout", ["file", "package", "tar", "zip"])
def test_an_empty_or_binary_activation_module_is_refused(tmp_path, data, message, layout):
    if layout == "file":
        path = _write(tmp_path / "activation.py", data)
    elif layout == "package":
        path = tmp_path / "sub"
        (path / "mytorch" / "nn").mkdir(parents=True)
        (path / "mytorch" / "nn" / "activation.py").write_bytes(data)
    elif layout == "tar":
        path = _tar(tmp_path / "h.tar", _handin_members(data))
    else:
        path = _write(tmp_path / "h.zip", _zip_bytes([(ENTRY, data)]))
    with pytest.raises(SubmissionError, match=message) as info:
        submission.load(path)
    assert "\n" not in str(info.value) and "activation.py" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        "# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\n".encode("latin-1"),
        b"\xef\xbb\xbfNAME = 'caf\xc3\xa9'\n",
        "NAME = 'café σ'\n".encode(),
    ],
    ids=["latin1-declared", "utf8-bom", "utf8"],
)
def test_python_source_in_any_declared_encoding_is_accepted(tmp_path, data):
    path = _write(tmp_path / "activation.py", data + SOURCE)
    assert submission.load(path).files.files["activation.py"] == data + SOURCE


# -------------------------------------------------------------- notebooks


def _notebook(cells: list[str], kind="code") -> bytes:
    def cell(source):
        if kind == "code":
            return {
                "cell_type": "code",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
        return {"cell_type": kind, "metadata": {}, "source": source}

    nb = {"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [cell(s) for s in cells]}
    return json.dumps(nb).encode()


def test_notebook_keeps_definitions_drops_magics_and_experiments():
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": "%matplotlib inline\nimport numpy as np\n!ls",
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "%%bash\necho hi",
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "class ReLU:\n    def forward(self, Z):\n        return Z\n\nprint(ReLU())",
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "metadata": {"tags": ["autograder-skip"]},
                "source": "check('ReLU')",
                "outputs": [],
                "execution_count": None,
            },
            {"cell_type": "markdown", "metadata": {}, "source": "class NotCode: pass"},
        ],
    }
    module = notebook_to_module(json.dumps(nb).encode(), "hw.ipynb")
    assert "import numpy as np" in module and "class ReLU" in module
    for dropped in ("%matplotlib", "!ls", "echo hi", "print(ReLU())", "check(", "NotCode"):
        assert dropped not in module
    compile(module, "nb", "exec")


def test_a_notebook_with_too_many_cells_is_refused_before_validation():
    limit = 2000
    assert notebook_to_module(_notebook(["x = 1"] * 50), "ok.ipynb").count("x = 1") == 50
    with pytest.raises(NotebookError, match=f"holds {limit + 1} cells; the limit is {limit}"):
        notebook_to_module(_notebook([""] * (limit + 1), kind="raw"), "many.ipynb")


def test_a_notebook_with_too_much_code_is_refused():
    from autograder.submission.notebook_source import MAX_CODE_BYTES

    with pytest.raises(NotebookError, match=f"the limit is {MAX_CODE_BYTES}"):
        notebook_to_module(_notebook(["x = 1\n" * (MAX_CODE_BYTES // 6 + 1)]), "big.ipynb")


@pytest.mark.parametrize(
    "source",
    ["x" + ".y" * 60000, "-" * 100000 + "1", "not " * 30000 + "x"],
    ids=["attr", "neg", "not"],
)
def test_a_cell_nested_too_deeply_is_refused_with_one_line(source):
    # Python's parser raises RecursionError or MemoryError here, which once ended in exit 3.
    with pytest.raises(
        NotebookError, match=re.escape("code cell 2 of deep.ipynb is nested too deeply")
    ):
        notebook_to_module(_notebook(["import numpy as np", source]), "deep.ipynb")


@pytest.mark.parametrize(
    "cell",
    [
        {"cell_type": "code", "metadata": {"tags": 5}, "source": "x = 1", "outputs": []},
        {"cell_type": "code", "metadata": {}, "source": 5, "outputs": []},
        {"cell_type": "code", "metadata": 5, "source": "x = 1", "outputs": []},
        5,
    ],
    ids=["tags", "source", "metadata", "cell"],
)
def test_a_notebook_against_its_schema_is_refused_with_one_line(cell):
    nb = {"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [cell]}
    with pytest.raises(NotebookError, match="not a readable Jupyter notebook") as info:
        notebook_to_module(json.dumps(nb).encode(), "nb.ipynb")
    assert "\n" not in str(info.value)


def test_a_cell_with_a_syntax_error_is_kept_for_the_worker_to_report():
    module = notebook_to_module(_notebook(["def f(:\n    pass"]), "nb.ipynb")
    assert "def f(:" in module


def test_a_nul_character_in_a_cell_is_refused():
    with pytest.raises(NotebookError, match=re.escape("code cell 1 of nb.ipynb holds a NUL")):
        notebook_to_module(_notebook(["x = 1\0"]), "nb.ipynb")


def test_a_cell_with_many_statements_is_converted_in_linear_time():
    # ast.get_source_segment splits the whole cell again for each statement.
    cell = "".join(f"x{i} = {i}\n" for i in range(3000))
    started = time.process_time()
    module = notebook_to_module(_notebook([cell]), "nb.ipynb")
    assert time.process_time() - started < 2.0
    assert module.count("\n") > 3000


def test_source_segments_match_the_standard_library():
    source = "x = 1\r\ny = 'é'; z = 2\rdef f():\r\n    return 'ü'\n\x0cclass A: pass\nw = (1,\n 2)"
    nodes = ast.parse(source).body
    assert _segments(source, nodes) == [ast.get_source_segment(source, n) for n in nodes]


@pytest.mark.parametrize(
    "data",
    [b"[" * 100000 + b"]" * 100000, b'{"cells": ' + b'{"a": ' * 50000 + b"1" + b"}" * 50001],
    ids=["array", "object"],
)
def test_deeply_nested_notebook_json_is_refused_with_one_line(tmp_path, data):
    with pytest.raises(SubmissionError, match="not a readable Jupyter notebook") as info:
        submission.load(_write(tmp_path / "deep.ipynb", data))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: t / "missing", "does not exist"),
        (lambda t: (t / "empty").mkdir() or t / "empty", "no activation file found"),
        (lambda t: (t / "x.txt").write_text("hi") and t / "x.txt", "cannot grade x.txt"),
        (
            lambda t: (t / "bad.tar").write_bytes(b"not a tar at all" * 40) and t / "bad.tar",
            "cannot unpack",
        ),
        (
            lambda t: (t / "bad.zip").write_bytes(b"PK\x03\x04broken") and t / "bad.zip",
            "cannot unpack",
        ),
        (lambda t: (t / "bad.ipynb").write_text("{not json") and t / "bad.ipynb", "not a readable"),
    ],
    ids=["missing", "empty-dir", "wrong-kind", "bad-tar", "bad-zip", "bad-notebook"],
)
def test_unusable_input_has_a_one_line_reason(tmp_path, make, message):
    with pytest.raises(SubmissionError, match=message) as info:
        submission.load(make(tmp_path))
    assert "\n" not in str(info.value)


# --------------------------------------------------- the real command line


# Runs the command it is given, then writes that one child's exit status, peak memory and
# CPU time as JSON. A process forked from pytest would report pytest's own size as its
# peak (Linux keeps the high-water mark across exec); this small parent forks the real one.
_MEASURE = """
import json, os, subprocess, sys, threading
report, timeout, *command = sys.argv[1:]
child = subprocess.Popen(command)
timer = threading.Timer(float(timeout), child.kill)
timer.start()
_, status, usage = os.wait4(child.pid, 0)
timer.cancel()
with open(report, "w") as out:
    json.dump({"status": os.waitstatus_to_exitcode(status), "peak_kib": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime}, out)
"""


def _cli(path: Path, scratch: Path, timeout: float = 60) -> tuple[int, str, str, dict]:
    """Run ``python -m autograder grade PATH``: exit status, stdout, stderr, and a measure.

    The measure holds the child's peak memory (``peak_kib``) and CPU time (``cpu_s``).
    """
    report = scratch.parent / "measure.json"
    command = [sys.executable, "-m", "autograder", "grade", str(path)]
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(report), str(timeout), *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
        timeout=timeout + 30,
    )
    measure = json.loads(report.read_text())
    report.unlink()
    return measure["status"], result.stdout, result.stderr, measure


def _pax_bomb() -> bytes:
    # 300 MiB of PAX header in 300 KiB of gzip members (a gzip stream may hold many).
    part = gzip.compress(b"\n" * (1 << 20), compresslevel=9)
    head = gzip.compress(_block("././@PaxHeader", 300 << 20, tarfile.XHDTYPE))
    return head + part * 300 + gzip.compress(b"\0" * 1024)


BAD_INPUTS = {
    "empty.py": (lambda: b"", "is empty"),
    "binary.py": (lambda: os.urandom(4000) + b"\0", "NUL bytes"),
    "latin1.py": (lambda: b"x = '\xe9'\n" + SOURCE, "not UTF-8 text"),
    "pax-cpu.tgz": (
        lambda: _gzip_of(_block("x", 4 << 20, tarfile.XHDTYPE), b"1" * (4 << 20)),
        "extended header",
    ),
    "pax-memory.tgz": (_pax_bomb, "extended header"),
    "gzip-bomb.tgz": (
        lambda: _gzip_of(_block("z.bin", 1 << 30, tarfile.REGTYPE), b"\0" * (64 << 20)),
        "1073741824 bytes",
    ),
    "ratio-bomb.tgz": (
        lambda: _gzip_of(_block("z.bin", 12 << 20, tarfile.REGTYPE), b"\0" * (12 << 20)),
        "times its packed size",
    ),
    "long-names.tgz": (
        lambda: _gzip_of(_block("L", 10, tarfile.GNUTYPE_LONGNAME, b"a" * 10) * 3000),
        "in a row",
    ),
    "sparse.tar": (
        lambda: _block(ENTRY, 10, tarfile.GNUTYPE_SPARSE, b"\0" * 10),
        "holds a sparse file",
    ),
    "deflate64.zip": (
        lambda: _patch_zip(_zip_bytes([(ENTRY, SOURCE)]), ENTRY.encode(), method=9),
        "method 9 (deflate64)",
    ),
    "encrypted.zip": (
        lambda: _patch_zip(_zip_bytes([(ENTRY, SOURCE)]), ENTRY.encode(), flags=1),
        "is encrypted",
    ),
    "lying.zip": (
        lambda: _patch_zip(_zip_bytes([(ENTRY, SOURCE)]), ENTRY.encode(), size=100),
        "more than its header says",
    ),
    "overlap.zip": (lambda: _overlapping_zip(50), "overlapping"),
    "bzip2.tar": (lambda: b"BZh91AY&SY" + b"\0" * 600, "compressed with bzip2"),
    "empty.tar": (lambda: b"", "is empty"),
    "deep.ipynb": (lambda: b"[" * 100000 + b"]" * 100000, "not a readable Jupyter notebook"),
    "deep-cell.ipynb": (lambda: _notebook(["-" * 100000 + "1"]), "nested too deeply"),
    "cells.ipynb": (lambda: _notebook([""] * 100000, kind="raw"), "cells; the limit"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_the_cli_refuses_bad_input_with_one_line(tmp_path, private_tmp, name):
    make, needle = BAD_INPUTS[name]
    folder = tmp_path / "in"
    folder.mkdir()
    path = _write(folder / name, make())
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    started = time.monotonic()
    status, stdout, stderr, usage = _cli(path, private_tmp)
    lines = stderr.splitlines()
    assert status == 2, stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("autograder: error: "), stderr
    assert needle in lines[0] and stdout == ""
    # Quick and small: every bomb is refused before the work it would cause.
    assert time.monotonic() - started < 20
    assert usage["cpu_s"] < 10
    assert usage["peak_kib"] < 250 << 10, f"peak memory {usage['peak_kib']} KiB"
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert [p.name for p in folder.iterdir()] == [name]


@pytest.mark.slow
def test_the_cli_refuses_a_fifo_without_hanging(tmp_path, private_tmp):
    root = tmp_path / "sub"
    (root / "mytorch" / "nn").mkdir(parents=True)
    os.mkfifo(root / "mytorch" / "nn" / "activation.py")
    status, _, stderr, _ = _cli(root, private_tmp, timeout=30)
    assert status == 2 and "not a regular file" in stderr
    assert len(stderr.splitlines()) == 1


@pytest.mark.parametrize("name", ["handin.tar", "handin.zip", "hw.ipynb", "activation.py"])
def test_a_fifo_of_any_kind_is_refused_without_waiting(tmp_path, name):
    # Opening a FIFO for reading waits for a writer; the archive reader once did.
    os.mkfifo(tmp_path / name)
    with pytest.raises(SubmissionError, match=re.escape(f"{name} is not a regular file")):
        submission.load(tmp_path / name)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["tgz", "zip"])
def test_the_cli_grades_an_honest_archive(tmp_path, private_tmp, layout):
    # The honest twin, end to end; on Python 3.11.0-3.11.3 every tar once failed here.
    path = write_layout(tmp_path / "in", REFERENCE_SOURCE, layout, name="alice")
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["submission"] == "alice" and report["score"] == report["max_score"]
