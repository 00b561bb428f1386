"""Loading submissions: every input form, safe archive extraction, clear errors."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile

import pytest
from helpers import REFERENCE_SOURCE, write_layout

from autograder import submission
from autograder.notebook_source import notebook_to_module
from autograder.submission import SubmissionError


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


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name, data=b"x = 1\n", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize(
    "members, reason",
    [
        ([_member("../evil.py")], "unsafe path"),
        ([_member("/etc/evil.py")], "unsafe path"),
        ([_member("mytorch/../../evil.py")], "unsafe path"),
        ([_member("dev", kind=tarfile.CHRTYPE)], "special file"),
        ([_member("fifo", kind=tarfile.FIFOTYPE)], "special file"),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "device", "fifo"],
)
def test_unsafe_tar_members_are_refused(tmp_path, members, reason):
    path = _tar(tmp_path / "handin.tar", members)
    with pytest.raises(SubmissionError, match=reason):
        submission.load(path)
    assert not (tmp_path.parent / "evil.py").exists()


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
    path = tmp_path / "handin.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mytorch/nn/activation.py", REFERENCE_SOURCE)
        zf.writestr("../../escaped.py", "x = 1")
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


def test_oversized_archive_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "MAX_ARCHIVE_BYTES", 1000)
    path = _tar(tmp_path / "big.tar", [_member("mytorch/nn/activation.py", b"#" * 2000)])
    with pytest.raises(SubmissionError, match="unpacks to more than"):
        submission.load(path)


def test_directory_symlink_entry_is_refused(tmp_path):
    root = tmp_path / "sub"
    (root / "mytorch" / "nn").mkdir(parents=True)
    secret = tmp_path / "solution.py"
    secret.write_text(REFERENCE_SOURCE)
    os.symlink(secret, root / "mytorch" / "nn" / "activation.py")
    with pytest.raises(SubmissionError, match="symbolic link"):
        submission.load(root)


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
