"""Element-wise comparison of a student's array with the expected one.

Messages follow numpy.testing's style: how many elements mismatch and what
share, the largest absolute and relative difference, then the worst few
elements with the input ``Z`` they came from, expected and got. For an
element-wise backward each element also shows its ``dLdA`` and the
derivative it implies, ``dAdZ = dLdZ / dLdA``, expected and the student's:
a derivative off by a factor, or a backward that ignores ``dLdA``, shows there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WORST_SHOWN = 3


def fmt(x: float) -> str:
    """A number as feedback shows it: short, but never rounded to a lie."""
    if not np.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    text = f"{x:.6g}"
    return text if float(text) == x or abs(x) >= 1e-4 else f"{x:.4e}"


@dataclass
class Comparison:
    """The outcome of comparing one array (or scalar) with its expected value."""

    passed: bool
    message: str = ""
    mismatched: int = 0
    total: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    # Where it went wrong: (index, Z, expected, got) of the worst elements.
    worst: list[tuple[tuple[int, ...], float | None, float, float]] = field(default_factory=list)
    shape_problem: str = ""
    # dLdA at each of the worst elements (element-wise backward only), else empty.
    worst_dLdA: list[float] = field(default_factory=list)


def close(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Element-wise closeness; infinities must match exactly, NaN never matches."""
    with np.errstate(all="ignore"):
        ok = np.isfinite(expected) & (np.abs(got - expected) <= atol + rtol * np.abs(expected))
    return ok | ((got == expected) & np.isinf(expected))


def all_close(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> bool:
    """Whether every element is close (same shapes): :func:`close` with a fast path.

    Most comparisons pass; checking the finite case first (the difference is
    NaN-free and within tolerance, the expected values finite) avoids half of
    the work, and anything unusual goes to the exact rule.
    """
    with np.errstate(all="ignore"):
        diff = np.abs(got - expected)
        if (diff <= atol + rtol * np.abs(expected)).all() and np.isfinite(expected).all():
            return True
    return bool(close(expected, got, rtol, atol).all())


def _shape_hint(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> str:
    if got.size != expected.size or got.size <= 1:
        return ""
    if got.shape == expected.shape[::-1] and close(expected.T, got, rtol, atol).all():
        return " The values are right but transposed: keep the layout of Z."
    if close(expected.reshape(-1), got.reshape(-1), rtol, atol).all():
        return " The values are right but laid out differently: is it flattened or reshaped?"
    return ""


def compare(
    expected: np.ndarray,
    got: np.ndarray,
    rtol: float,
    atol: float,
    Z: np.ndarray | None = None,
    name: str = "A",
    dLdA: np.ndarray | None = None,
) -> Comparison:
    """Compare ``got`` with ``expected`` (both float64).

    ``dLdA``, given for an element-wise backward, is shown beside each of the
    worst elements with the derivative it implies.
    """
    expected = np.asarray(expected, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if got.shape != expected.shape:
        problem = (
            f"{name} has the wrong shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}."
        )
        return Comparison(
            passed=False,
            message=problem + _shape_hint(expected, got, rtol, atol),
            total=expected.size,
            mismatched=expected.size,
            shape_problem=problem,
        )
    if all_close(expected, got, rtol, atol):
        return Comparison(passed=True, total=int(expected.size))
    ok = close(expected, got, rtol, atol)
    total = int(ok.size)
    bad = int(total - np.count_nonzero(ok))
    if bad == 0:
        return Comparison(passed=True, total=total)
    with np.errstate(all="ignore"):
        diff = np.abs(got - expected)
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = diff / np.abs(expected)
    rel = np.where(np.isnan(rel), np.inf, rel)
    order = np.argsort(-np.where(ok, -1.0, diff), axis=None, kind="stable")[: min(bad, WORST_SHOWN)]
    worst = []
    worst_dLdA = []
    with_dLdA = dLdA is not None and np.shape(dLdA) == expected.shape
    for flat in order:
        index = tuple(int(i) for i in np.unravel_index(int(flat), expected.shape))
        z = None if Z is None or np.shape(Z) != expected.shape else float(np.asarray(Z)[index])
        worst.append((index, z, float(expected[index]), float(got[index])))
        if with_dLdA:
            worst_dLdA.append(float(np.asarray(dLdA)[index]))
    comparison = Comparison(
        passed=False,
        mismatched=bad,
        total=total,
        max_abs=float(np.max(np.where(ok, 0.0, diff))),
        max_rel=float(np.max(np.where(ok, 0.0, rel))),
        worst=worst,
        worst_dLdA=worst_dLdA,
    )
    comparison.message = describe(comparison, name)
    return comparison


# Below this |dLdA| the quotient dLdZ / dLdA says nothing useful.
_TINY_DLDA = 1e-8


def _implied(e: float, g: float, d: float) -> str:
    if abs(d) < _TINY_DLDA:
        return "; dLdA = 0 here, so dLdZ must be 0" if d == 0 and g != 0 else ""
    with np.errstate(all="ignore"):
        return f"; dAdZ = dLdZ / dLdA: expected {fmt(e / d)}, yours {fmt(g / d)}"


def describe(c: Comparison, name: str, shown: int = WORST_SHOWN) -> str:
    """numpy.testing-style text for a failed comparison, with ``shown`` worst elements."""
    share = 100.0 * c.mismatched / max(c.total, 1)
    lines = [
        f"{name}: {c.mismatched} of {c.total} elements differ ({share:.3g}%); "
        f"max abs diff {fmt(c.max_abs)}, max rel diff {fmt(c.max_rel)}"
    ]
    for i, (index, z, e, g) in enumerate(c.worst[:shown]):
        where = f"at {list(index)}" if index else "at the only element"
        at_z = "" if z is None else f" where Z = {fmt(z)}"
        line = f"  {where}{at_z}"
        if i < len(c.worst_dLdA):
            d = c.worst_dLdA[i]
            line += f", dLdA = {fmt(d)}: expected {fmt(e)}, got {fmt(g)}{_implied(e, g, d)}"
        else:
            line += f": expected {fmt(e)}, got {fmt(g)}"
        lines.append(line)
    return "\n".join(lines)


def compare_scalar(
    expected: float,
    got: np.ndarray,
    rtol: float,
    atol: float,
    name: str,
    scale: float | None = None,
) -> Comparison:
    """Compare a scalar such as Swish's dLdbeta; any size-1 array is accepted.

    For a sum, ``scale`` is the sum of the magnitudes of its terms: the
    relative tolerance applies to it, since rounding errors grow with the
    terms, not with what is left after they cancel.
    """
    got = np.asarray(got, dtype=np.float64)
    if got.size != 1:
        problem = (
            f"{name} should be a single number summed over the whole batch; "
            f"got an array of shape {tuple(got.shape)}."
        )
        return Comparison(
            passed=False, message=problem, total=1, mismatched=1, shape_problem=problem
        )
    value = float(got.reshape(()))
    reference = max(abs(expected), abs(scale or 0.0))
    with np.errstate(all="ignore"):
        ok = np.isfinite(expected) and abs(value - expected) <= atol + rtol * reference
    if ok:
        return Comparison(passed=True, total=1)
    with np.errstate(all="ignore"):
        diff = abs(value - expected)
    c = Comparison(
        passed=False,
        mismatched=1,
        total=1,
        max_abs=diff,
        max_rel=diff / abs(expected) if expected else float("inf"),
        worst=[((), None, float(expected), value)],
    )
    c.message = f"{name}: expected {fmt(expected)}, got {fmt(value)}"
    return c
