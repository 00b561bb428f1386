"""Control characters from a submission, made visible instead of obeyed.

A submission controls much of what the text formats show: what it printed,
its exception messages and warnings, its file, class and submission names.
A raw ESC, CR or backspace in any of them would reach the terminal of whoever
reads the table (clear the screen, redraw a line as "100/100"). Every text
format passes its whole output through :func:`printable` once, so nothing
needs to remember which part came from the student; JSON keeps the raw
strings (its encoder escapes control characters itself).
"""

from __future__ import annotations

import re
import unicodedata

# Anything but printable ASCII and the two layout characters is looked at;
# most text is plain ASCII, so the common case is one regex scan.
_SUSPECT = re.compile("[^\x20-\x7e\n\t]")
# Unicode categories that do not print: controls (C0, DEL, C1), format
# characters (bidi overrides, zero-width joiners), surrogates, private use,
# unassigned code points, and the line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if unicodedata.category(ch) not in _HIDDEN:
        return ch  # printable non-ASCII text (accents, CJK, symbols) stays
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every non-printing character escaped (ESC as ``\\x1b``).

    Newline and tab are kept (the layout needs them); CR, ESC, BEL,
    backspace, DEL, C1 controls and other invisible characters are written
    as Python-style escapes.
    """
    if not _SUSPECT.search(text):
        return text
    return _SUSPECT.sub(_escape, text)
