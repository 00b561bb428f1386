"""Hints added to a failing public case: what the likely mistake is.

The checks decide pass or fail; this module only explains, with three tools:

* **Named mistakes.** A catalogue of known wrong implementations
  (``mistakes.py``, instructor side) is run on every public case when the
  case data is built; its outputs travel with the case (``Case.mistakes``,
  also in the student bundle's data file, so no mistake code ships). When a
  student's output matches one of them, and not the reference, the hint names
  it in one sentence with the formula to check. Mistakes of *form* rather
  than of value (a transposed or flattened output, ``self.A`` not stored,
  ``Z`` changed in place, ``dLdbeta`` not summed) are recognised here from
  what the worker observed: :data:`STRUCTURAL`.
* **Self-consistency.** For a backward failure, central finite differences of
  the student's *own* forward (evaluated by the worker on perturbed inputs,
  :func:`probe_phase`) tell whether the forward is wrong, the backward does
  not match the forward, or both.
* What the worker saw otherwise (numpy warnings, ``self.A`` differing from
  the returned value).

Everything here runs in the grader's process on plain float64 arrays that
came back from the worker; no student code is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autograder.course.cases import Case, Expected
from autograder.isolation import outputs as out
from autograder.isolation.outputs import CaseOutput, RunOutput
from autograder.judge import compare
from autograder.report import record as report

# Named mistakes shown for one case at most (two mistakes rarely agree on a case).
SHOWN_MISTAKES = 2
MISTAKE_PREFIX = "Likely mistake"

# ------------------------------------------------------------ comparisons


def _same(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> bool:
    """Whether two arrays agree element-wise; here inf matches inf and nan matches nan.

    (Grading never accepts nan; recognising a mistake that produces nan, such as
    Softmax without the max subtraction, needs it.)
    """
    expected = np.asarray(expected, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if expected.shape != got.shape:
        return False
    ok = compare.close(expected, got, rtol, atol) | (np.isnan(expected) & np.isnan(got))
    return bool(ok.all())


def _same_scalar(case: Case, want: float | None, got: np.ndarray | None) -> bool:
    if want is None or got is None or np.size(got) != 1:
        return False
    if not np.isfinite(want):
        return bool(np.asarray(got, dtype=np.float64).reshape(()) == want)
    spec = case.spec
    scale = case.expected.dLdbeta_scale if case.expected is not None else None
    return compare.compare_scalar(want, got, spec.rtol, spec.atol, "dLdbeta", scale).passed


def _phase_matches(case: Case, phase: str, want: Expected, got: np.ndarray | None) -> bool:
    """Whether ``got`` equals ``want``'s value of ``phase`` within the activation's tolerance."""
    if got is None:
        return False
    spec = case.spec
    if phase == "dLdbeta":
        return _same_scalar(case, want.dLdbeta, got)
    return _same(want.phase(phase), got, spec.rtol, spec.atol)


# ------------------------------------------------------------ structural mistakes


@dataclass(frozen=True)
class Structural:
    """A mistake recognised from the form of what came back, not from its values.

    ``text`` is one sentence; ``{cls}`` stands for the activation's class name.
    """

    name: str
    text: str
    detect: Callable[[Case, str, CaseOutput], bool]

    def sentence(self, case: Case) -> str:
        """The sentence for ``case``'s activation."""
        return self.text.format(cls=case.activation)


def _value(case: Case, phase: str, output: CaseOutput) -> tuple[np.ndarray | None, np.ndarray]:
    got = output.phase(phase).value if output.phase(phase).status == out.OK else None
    expected = case.expected.phase(phase) if case.expected is not None else None
    return got, np.asarray(expected, dtype=np.float64)


def _transposed(case: Case, phase: str, output: CaseOutput) -> bool:
    if phase not in ("forward", "backward") or case.expected is None:
        return False
    got, expected = _value(case, phase, output)
    if got is None or expected.ndim < 2:
        return False
    spec = case.spec
    return _same(expected.T, got, spec.rtol, spec.atol) and not _same(
        expected, got, spec.rtol, spec.atol
    )


def _flattened(case: Case, phase: str, output: CaseOutput) -> bool:
    if phase not in ("forward", "backward") or case.expected is None:
        return False
    got, expected = _value(case, phase, output)
    if got is None or got.shape == expected.shape or got.size != expected.size:
        return False
    spec = case.spec
    # A single row transposed is also a reshape; "transposed" says it better.
    return _same(expected.reshape(-1), got.reshape(-1), spec.rtol, spec.atol) and not (
        _transposed(case, phase, output)
    )


def _dLdbeta_not_summed(case: Case, phase: str, output: CaseOutput) -> bool:
    if phase != "dLdbeta" or case.expected is None or case.expected.dLdbeta is None:
        return False
    got = output.dLdbeta.value if output.dLdbeta.status == out.OK else None
    if got is None or got.size <= 1 or not np.all(np.isfinite(got)):
        return False
    return _same_scalar(case, case.expected.dLdbeta, np.array(np.sum(got)))


STRUCTURAL: tuple[Structural, ...] = (
    Structural(
        "output-transposed",
        "the values are right but transposed; return them in the layout of Z "
        "(shape (N, C), one sample per row), without .T.",
        _transposed,
    ),
    Structural(
        "output-flattened",
        "the values are right but flattened or reshaped; return an array of exactly "
        "the shape of Z (element-wise activations work on any shape as it is).",
        _flattened,
    ),
    Structural(
        "A-not-stored",
        "{cls}.forward did not store its output in self.A; backward needs it, so set "
        "self.A = ... in forward before returning it.",
        lambda case, phase, output: (
            phase in ("backward", "dLdbeta") and output.stored_A in ("missing", "none")
        ),
    ),
    Structural(
        "A-stored-differs",
        "{cls}.forward stored something in self.A that differs from what it returned; "
        "self.A must hold exactly the A that forward returns.",
        lambda case, phase, output: (
            phase in ("backward", "dLdbeta") and output.stored_A == "different"
        ),
    ),
    Structural(
        "Z-changed-in-place",
        "{cls}.forward changed the caller's Z in place (e.g. Z[Z < 0] = 0 or Z *= ...); "
        "compute A in a new array, e.g. np.maximum(Z, 0), or work on Z.copy().",
        lambda case, phase, output: phase == "forward" and output.Z_modified,
    ),
    Structural(
        "dLdA-changed-in-place",
        "{cls}.backward changed the caller's dLdA in place (e.g. dLdA *= dAdZ); "
        "return a new array: dLdZ = dLdA * dAdZ.",
        lambda case, phase, output: phase == "backward" and output.dLdA_modified,
    ),
    Structural(
        "dLdbeta-not-summed",
        "self.dLdbeta is an array, not one number; beta is a single number shared by every "
        "element, so sum over all of them: self.dLdbeta = np.sum(dLdA * Z**2 * s * (1 - s)).",
        _dLdbeta_not_summed,
    ),
    Structural(
        "dLdbeta-missing",
        "{cls}.backward did not set self.dLdbeta; beta is learnable, so backward must also "
        "store dLdbeta = the sum over the batch of dLdA * Z**2 * s * (1 - s), s = sigmoid(beta Z).",
        lambda case, phase, output: (
            phase == "dLdbeta"
            and output.dLdbeta.status == out.MISSING
            and not output.dLdbeta.info.get("method")  # backward itself is missing
        ),
    ),
)

STRUCTURAL_BY_NAME: dict[str, Structural] = {s.name: s for s in STRUCTURAL}


def named_mistakes(case: Case, phase: str, output: CaseOutput) -> list[tuple[str, str]]:
    """The catalogued mistakes ``output`` shows on ``phase`` of ``case``: (name, sentence).

    A computed mistake counts only where its output differs from the
    reference's and the student's equals it, both within the activation's
    tolerance, so an output that matches the reference never matches a mistake.
    """
    found: list[tuple[str, str]] = []
    for structural in STRUCTURAL:
        if structural.detect(case, phase, output):
            found.append((structural.name, structural.sentence(case)))
    expected = case.expected
    result = output.phase(phase)
    got = result.value if result.status == out.OK else None
    if expected is None or got is None:
        return found
    if _phase_matches(case, phase, expected, got):
        return found  # the reference's output: whatever failed, it is not a value mistake
    for name, mistaken in case.mistakes.items():
        if _phase_matches(case, phase, expected, mistaken.phase(phase)):
            continue  # this mistake does not show on this phase of this case
        if _phase_matches(case, phase, mistaken, got):
            found.append((name, mistaken.note))
    return found


# ------------------------------------------------------------ finite-difference self-check

# Failing cases probed per activation: those the checks describe in full
# (checks.SHOWN_FAILURES, the most telling first; the others are only listed by id).
PROBED_PER_ACTIVATION = 2
# Step of the central differences, relative to max(1, |Z|), by the precision of the
# student's outputs: small enough that the truncation error (h^2 f'''/6) is
# negligible, large enough that rounding in the student's forward does not swamp it.
FD_STEP = {"float64": 1e-4, "low": 3e-3}
# Elements with |Z| beyond this are not checked: exponentials there make
# differences of the forward meaningless (overflow, total cancellation).
FD_MAX_Z = 50.0
# Agreement required between the student's dLdZ and the finite differences,
# relative to |dLdZ| and to the size of dLdA; plus the rounding noise of the forward.
FD_RTOL = 1e-4
FD_ATOL = 1e-5
_EPS = {"float64": float(np.finfo(np.float64).eps), "low": float(np.finfo(np.float32).eps)}


def _precision(output: CaseOutput) -> str:
    # The dtype forward returned, as the worker reported it; unknown counts as low
    # (a larger step and more noise allowed: never blame a backward for rounding).
    return "float64" if output.forward.info.get("dtype") == "float64" else "low"


def _steps(case: Case, output: CaseOutput) -> np.ndarray:
    Z = np.asarray(case.Z, dtype=np.float64)
    return FD_STEP[_precision(output)] * np.maximum(1.0, np.abs(Z))


def probe_inputs(case: Case, output: CaseOutput) -> list[np.ndarray]:
    """The inputs whose forward outputs the self-check needs (empty: not checkable).

    Element-wise activations: ``Z + h`` and ``Z - h``, every element at once (each
    output element depends on its own input only). Softmax: for each column j,
    ``Z ± h`` in column j of every row (rows are independent), which gives
    column j of every row's Jacobian.
    """
    Z = np.asarray(case.Z, dtype=np.float64)
    h = _steps(case, output)
    if not case.spec.vector:
        return [Z + h, Z - h]
    if Z.ndim != 2:
        return []
    probes = []
    for j in range(Z.shape[1]):
        E = np.zeros_like(Z)
        E[:, j] = h[:, j]
        probes.extend([Z + E, Z - E])
    return probes


def _backward_fails(case: Case, output: CaseOutput) -> bool:
    """Whether the case's backward returned an array of the right shape with wrong values."""
    if case.expected is None or output.backward.status != out.OK:
        return False
    got = output.backward.value
    expected = case.expected.dLdZ
    if got is None or got.shape != expected.shape:
        return False
    spec = case.spec
    return not compare.all_close(expected, got, spec.rtol, spec.atol)


def probe_requests(cases: list[Case], run: RunOutput) -> dict[str, list[np.ndarray]]:
    """Probe inputs for the public cases whose backward failed, by case id.

    Only the first few failing cases of each activation, in :func:`telling_order`,
    are probed: the ones whose feedback is shown in full.
    """
    requests: dict[str, list[np.ndarray]] = {}
    per_activation: dict[str, int] = {}
    failing = []
    for case in cases:
        output = run.cases.get(case.id)
        if case.visibility == "public" and output is not None and _backward_fails(case, output):
            failing.append(case)
    for case in telling_order(failing):
        output = run.cases[case.id]
        if per_activation.get(case.activation, 0) >= PROBED_PER_ACTIVATION:
            continue
        probes = probe_inputs(case, output)
        if probes:
            requests[case.id] = probes
            per_activation[case.activation] = per_activation.get(case.activation, 0) + 1
    return requests


PROBE_PHASE = "probes"


def merge_probes(runs: dict[str, RunOutput]) -> None:
    """Move the probe outputs onto the public cases they belong to."""
    probed = runs.pop(PROBE_PHASE, None)
    public = runs.get("public")
    if probed is None or public is None:
        return
    for case_id, output in probed.cases.items():
        if case_id in public.cases:
            public.cases[case_id].probes = output.probes


@dataclass
class SelfCheck:
    """The outcome of comparing a backward with finite differences of its own forward."""

    fd: np.ndarray  # dLdZ predicted by finite differences of the student's forward
    checked: np.ndarray  # elements where the finite differences can be trusted
    agrees: np.ndarray  # elements where the student's dLdZ matches them
    near_kink: np.ndarray  # elements skipped because a kink is within reach
    forward_ok: bool


def self_check(case: Case, output: CaseOutput) -> SelfCheck | None:
    """Compare the student's dLdZ with finite differences of the student's forward.

    None when the probes are missing or unusable (forward failed on them, or the
    backward has the wrong shape).
    """
    got = output.backward.value
    expected = case.expected
    if expected is None or got is None or got.shape != np.shape(case.Z):
        return None
    inputs = probe_inputs(case, output)
    probes = output.probes
    if not inputs or len(probes) != len(inputs) or any(p is None for p in probes):
        return None
    Z = np.asarray(case.Z, dtype=np.float64)
    dLdA = np.asarray(case.dLdA, dtype=np.float64)
    eps = _EPS[_precision(output)]
    with np.errstate(all="ignore"):
        if case.spec.vector:
            N, C = Z.shape
            fd = np.empty((N, C))
            noise = np.empty((N, C))
            scale = np.repeat(np.max(np.abs(dLdA), axis=1, keepdims=True), C, axis=1)
            for j in range(C):
                Ap, Am = probes[2 * j], probes[2 * j + 1]
                h = (inputs[2 * j][:, j] - inputs[2 * j + 1][:, j]) / 2.0
                # Column j of each row's Jacobian: dA[i, m] / dZ[i, j].
                J_j = (Ap - Am) / (2.0 * h[:, None])
                fd[:, j] = np.sum(dLdA * J_j, axis=1)
                size = np.max(np.maximum(np.abs(Ap), np.abs(Am)), axis=1)
                noise[:, j] = 4.0 * eps * size / h * np.sum(np.abs(dLdA), axis=1)
        else:
            Ap, Am = probes
            h = (inputs[0] - inputs[1]) / 2.0
            fd = dLdA * (Ap - Am) / (2.0 * h)
            scale = np.abs(dLdA)
            noise = 4.0 * eps * np.maximum(np.abs(Ap), np.abs(Am)) / h * np.abs(dLdA)
        step = _steps(case, output)
        near = np.zeros(Z.shape, dtype=bool)
        for kink in case.spec.kink_points(case.kwargs):
            near |= np.abs(Z - kink) <= 2.0 * step
        checked = np.isfinite(fd) & np.isfinite(got) & (np.abs(Z) <= FD_MAX_Z) & ~near
        agrees = np.abs(got - fd) <= FD_RTOL * np.abs(fd) + FD_ATOL * scale + noise
    forward = output.forward.value
    forward_ok = forward is not None and _same(expected.A, forward, case.spec.rtol, case.spec.atol)
    return SelfCheck(
        fd=fd, checked=checked, agrees=agrees & checked, near_kink=near, forward_ok=forward_ok
    )


def _kinks_text(case: Case) -> str:
    kinks = case.spec.kink_points(case.kwargs)
    return " or ".join(f"Z = {compare.fmt(k)}" for k in kinks) or "a kink"


def _example(case: Case, got: np.ndarray, check: SelfCheck, where: np.ndarray) -> str:
    gap = np.where(where, np.abs(got - check.fd), -1.0)
    flat = int(np.argmax(gap))
    index = tuple(int(i) for i in np.unravel_index(flat, gap.shape))
    z = float(np.asarray(case.Z, dtype=np.float64)[index])
    at = f"at {list(index)}" if index else "at its only element"
    return (
        f"e.g. case {case.id} {at} where Z = {compare.fmt(z)}: your dLdZ = "
        f"{compare.fmt(float(got[index]))}, differences of your forward give "
        f"{compare.fmt(float(check.fd[index]))}"
    )


# Verdicts of the self-check, as codes (the sentence is chosen from the code).
BACKWARD_MISMATCH = "backward-mismatch"  # forward right, backward not its derivative
FORWARD_ONLY = "forward-only"  # forward wrong, backward the derivative of that forward
BOTH = "both"  # forward wrong, backward not its derivative either
IMPRECISE = "imprecise"  # backward matches to about four digits only
AT_KINK = "at-kink"  # every differing element sits at a kink
OUT_OF_REACH = "out-of-reach"  # every differing element has large |Z| or is not finite

# When a test's cases get different verdicts, the first of these is shown.
SELF_CHECK_PRIORITY = (BACKWARD_MISMATCH, BOTH, FORWARD_ONLY, IMPRECISE, AT_KINK, OUT_OF_REACH)

SELF_CHECK = "Self-check (central finite differences of your own forward): "


def self_check_verdict(case: Case, output: CaseOutput) -> tuple[str, str] | None:
    """The self-check's verdict on a failing backward: (code, sentence); None if it cannot tell."""
    check = self_check(case, output)
    if check is None or not check.checked.any():
        return None
    got = output.backward.value
    assert got is not None and case.expected is not None
    spec = case.spec
    failing = ~compare.close(case.expected.dLdZ, got, spec.rtol, spec.atol)
    disagree = check.checked & ~check.agrees
    n, k = int(check.checked.sum()), int(disagree.sum())
    if k:
        where = f"at {k} of the {n} elements checked, {_example(case, got, check, disagree)}"
        if check.forward_ok:
            return BACKWARD_MISMATCH, (
                SELF_CHECK + "your forward is right, but your backward is not its derivative "
                f"({where}): the derivative in backward is what to fix."
            )
        return BOTH, (
            SELF_CHECK + "your forward is wrong, and your backward is not the derivative of "
            f"your forward either ({where}). Fix forward first, then compare again."
        )
    if (failing & check.checked).any():
        if not check.forward_ok:
            return FORWARD_ONLY, (
                SELF_CHECK + "your backward is the correct derivative of your forward; fix "
                f"forward (all {n} elements checked agree; where backward repeats forward's "
                "formula, correct it there too)."
            )
        return IMPRECISE, (
            SELF_CHECK + "your backward matches your own forward to about four digits, but not "
            "to the grading tolerance: look for a small inaccuracy (an approximation, a rounded "
            "constant, low precision)."
        )
    # Every element that differs is out of the finite differences' reach.
    if (failing & check.near_kink).any():
        code, where = (
            AT_KINK,
            (
                f"the elements that differ sit at {_kinks_text(case)} (or within a step of it), "
                "where the derivative takes the value PyTorch chose"
            ),
        )
        advice = "check that value (see the docstring)"
    else:
        code, where = (
            OUT_OF_REACH,
            (
                f"the elements that differ have large |Z| (beyond {FD_MAX_Z:g}) or are not finite, "
                "where finite differences cannot help"
            ),
        )
        advice = "make backward safe for large |Z|"
    if not check.forward_ok:
        advice = "but your forward is wrong on this case: fix it first"
    return code, (
        SELF_CHECK + f"where finite differences can be trusted your backward matches your own "
        f"forward; {where}: {advice}."
    )


def self_check_text(case: Case, output: CaseOutput) -> str:
    """The self-check's sentence ("" when it cannot tell)."""
    verdict = self_check_verdict(case, output)
    return verdict[1] if verdict else ""


# ------------------------------------------------------------ what failed, as a code


def _warnings(output: CaseOutput, phase: str) -> list[str]:
    return list(output.phase(phase).info.get("warnings") or [])


def numeric_kind(got: np.ndarray, expected: np.ndarray, warnings: list[str]) -> str:
    """overflow, underflow-0/0 or nan-inf when ``got`` is not finite where ``expected`` is; else "".

    numpy's own warnings (recorded by the worker on public cases) tell the
    mechanism: an overflow ("overflow encountered in exp") against a nan from
    0/0 after terms underflowed to 0 silently (numpy ignores underflow, so only
    "invalid value encountered in divide" is raised then). Anything else, and
    every hidden case (no warnings recorded), is nan-inf.
    """
    expected = np.asarray(expected, dtype=np.float64)
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(got) & np.isfinite(expected)
    if not bad.any():
        return ""
    text = " ".join(warnings)
    if "overflow" in text:
        return report.OVERFLOW
    if "invalid value" in text and np.isnan(got[bad]).any():
        return report.UNDERFLOW
    return report.NAN_INF


def value_kind(
    case: Case, phase: str, got: np.ndarray, result: compare.Comparison, output: CaseOutput
) -> str:
    """The code of a comparison that failed: shape, overflow, underflow-0/0, nan-inf or wrong-value."""
    if result.shape_problem:
        return report.SHAPE
    expected = case.expected.phase(phase) if case.expected is not None else None
    if expected is not None:
        kind = numeric_kind(got, np.asarray(expected), _warnings(output, phase))
        if kind:
            return kind
    return report.WRONG_VALUE


# ------------------------------------------------------------ notes of one case


@dataclass(frozen=True)
class Note:
    """A sentence about a failing test, shown once however many cases it applies to.

    Two notes with the same ``key`` say the same thing (the text may differ in
    its example); the first one, from the most telling case, is shown.
    ``rank`` orders a test's notes.
    """

    key: str
    text: str
    rank: int


RANK_MISTAKE, RANK_SELF_CHECK, RANK_NUMERIC, RANK_HINT, RANK_WARNINGS, RANK_WHERE = range(6)


@dataclass
class CaseNotes:
    """What the feedback adds to one failing public case."""

    notes: list[Note]
    mistake: str = ""  # the catalogued mistake its output matched, if any
    # The case's forward failed and nothing points at the phase itself: it
    # fails because forward does (backward and dLdbeta only).
    follows_forward: bool = False


def _forward_wrong(case: Case, output: CaseOutput) -> bool:
    value = output.forward.value
    if output.forward.status != out.OK or value is None or case.expected is None:
        return True
    spec = case.spec
    expected = case.expected.A
    return value.shape != expected.shape or not compare.all_close(
        expected, value, spec.rtol, spec.atol
    )


def _mistake_has_right_forward(case: Case, name: str) -> bool:
    """Whether catalogued mistake ``name`` computes the right A on ``case`` (its own phase is later)."""
    mistaken = case.mistakes.get(name)
    if mistaken is None or case.expected is None:
        return True  # a structural mistake: recognised from the phase's own output
    return _same(case.expected.A, mistaken.A, case.spec.rtol, case.spec.atol)


NUMERIC_TEXT = {
    report.OVERFLOW: "an intermediate value overflowed to inf, and the result holds inf or nan "
    "where |Z| is large. Rewrite the formula so that nothing can overflow (for example, "
    "exponentials of -|Z| only, or shift by the largest value first).",
    report.UNDERFLOW: "the result holds nan from 0/0: every term of a quotient underflowed to 0 "
    "(e^x is 0 for x below about -745), so numerator and denominator are both 0. Shift by a "
    "value from the same sum (e.g. each row's own maximum, not the whole array's), so the "
    "largest term is e^0 = 1.",
    report.NAN_INF: "the result holds inf or nan where the expected values are finite.",
}


def _absent(output: CaseOutput, phase: str) -> bool:
    """Whether the class, or the method behind ``phase``, is missing or of another API."""
    if output.class_missing:
        return True
    method = output.backward if phase == "dLdbeta" else output.phase(phase)
    if method.status == out.API:
        return True
    return method.status == out.MISSING and bool(method.info.get("method"))


def case_notes(
    case: Case,
    phase: str,
    output: CaseOutput,
    result: compare.Comparison | None,
    kind: str,
) -> CaseNotes:
    """The notes of one failing public case of ``phase`` (its failure code is ``kind``)."""
    if _absent(output, phase):
        # Nothing of the student's ran here: a hint (a dLdbeta "mistake" for a missing
        # Swish) would only mislead; the failure's own sentence says what to do.
        return CaseNotes([], "", False)
    notes: list[Note] = []
    named = named_mistakes(case, phase, output)
    own = [(n, s) for n, s in named if phase == "forward" or _mistake_has_right_forward(case, n)]
    for name, sentence in named[:SHOWN_MISTAKES]:
        text = f"{MISTAKE_PREFIX} ({name}): {sentence}"
        notes.append(Note(f"mistake:{name}", text, RANK_MISTAKE))
    mistake = named[0][0] if named else ""
    verdict = None
    if phase == "backward" and result is not None and not result.passed:
        verdict = self_check_verdict(case, output)
        if verdict:
            notes.append(Note(f"self-check:{verdict[0]}", verdict[1], RANK_SELF_CHECK))
    forward_failed = phase != "forward" and _forward_wrong(case, output)
    follows = forward_failed and not own and (verdict is None or verdict[0] != BACKWARD_MISMATCH)
    if forward_failed and output.forward.status == out.OK and verdict is None:
        text = "Hint: forward is also wrong on these cases; fix forward first."
        notes.append(Note("forward-wrong", text, RANK_HINT))
    warnings = _warnings(output, phase)
    if kind in NUMERIC_TEXT and not named:
        said = f"numpy warned ({'; '.join(warnings)}): " if warnings else ""
        text = "Hint: " + said + NUMERIC_TEXT[kind]
        notes.append(Note(f"numeric:{kind}", text, RANK_NUMERIC))
    elif warnings and result is not None and kind not in NUMERIC_TEXT:
        notes.append(Note("warnings", "numpy warned: " + "; ".join(warnings), RANK_WARNINGS))
    return CaseNotes(notes, mistake, follows)


# ------------------------------------------------------------ the order of cases


def _has_kink(case: Case) -> bool:
    kinks = case.spec.kink_points(case.kwargs)
    return bool(kinks) and bool(np.isin(np.asarray(case.Z, dtype=np.float64), kinks).any())


def _unit_dLdA(case: Case) -> bool:
    # dLdA of ones (and zeros, signs): dLdZ is the derivative itself, as in a worked example.
    dLdA = np.asarray(case.dLdA, dtype=np.float64)
    return bool(np.all(np.isin(dLdA, (-1.0, 0.0, 1.0))))


def telling_order(cases: list[Case]) -> list[Case]:
    """Failing cases, the most telling first: a worked example with dLdA = 1, an exact
    kink, non-default constructor arguments; then the table's order."""

    def key(item: tuple[int, Case]) -> tuple[bool, bool, bool, int]:
        index, case = item
        return (not _unit_dLdA(case), not _has_kink(case), not case.kwargs, index)

    return [case for _, case in sorted(enumerate(cases), key=key)]


# ------------------------------------------------------------ where it fails


def parameter_note(failing: list[Case], passing: list[Case]) -> Note | None:
    """A sentence when exactly the cases with (or without) a constructor argument fail.

    Defaults are recognised from the data: a case that does not pass an
    argument uses its default.
    """
    everything = failing + passing
    failing_ids = {c.id for c in failing}
    names = sorted({k for case in everything for k in case.kwargs})
    for name in names:
        given = [c for c in everything if name in c.kwargs]
        default = [c for c in everything if name not in c.kwargs]
        if not given or not default:
            continue
        values: list[str] = []
        for c in given:
            if repr(c.kwargs[name]) not in values:
                values.append(repr(c.kwargs[name]))
        listed = f"{name} = " + " or ".join(values)
        if {c.id for c in given} == failing_ids:
            return Note(
                f"where:param:{name}",
                f"Where: every case with the default {name} passes, every case with {listed} "
                f"fails: check where {name} enters the formula.",
                RANK_WHERE,
            )
        if {c.id for c in default} == failing_ids:
            return Note(
                f"where:default:{name}",
                f"Where: every case with {listed} passes, every case with the default {name} "
                f"fails: check the default value of {name} in __init__.",
                RANK_WHERE,
            )
    return None


@dataclass(frozen=True)
class _Feature:
    """A property of a case's input that can separate the failing cases from the passing ones."""

    name: str
    has: Callable[[Case], bool]
    only_failing: str  # said when exactly the cases with the property fail
    only_passing: str  # said when exactly the cases with the property pass


def _rows(case: Case) -> int:
    Z = np.asarray(case.Z)
    return int(Z.shape[0]) if Z.ndim == 2 else 0


FEATURES: tuple[_Feature, ...] = (
    _Feature(
        "one-row",
        lambda c: _rows(c) == 1,
        "only the cases with a single row fail ({failing}): each row is one sample; N = 1 "
        "must work too (keep the 2-D shape).",
        "case {passing} (a single row) passes and every case with several rows fails: each row is "
        "one sample, so check the axis of every sum, max and product (axis=1, keepdims=True).",
    ),
    _Feature(
        "kink",
        _has_kink,
        "only the cases with Z exactly at a kink fail ({failing}): check the value of the "
        "derivative there (see the docstring).",
        "only the cases with Z exactly at a kink pass ({passing}).",
    ),
    _Feature(
        "large",
        lambda c: bool(np.max(np.abs(np.asarray(c.Z, dtype=np.float64)), initial=0.0) > FD_MAX_Z),
        "only the cases with large |Z| fail ({failing}): make the formula safe for |Z| up "
        "to 1000 (no overflow, no 0/0).",
        "only the cases with large |Z| pass ({passing}).",
    ),
    _Feature(
        "float32",
        lambda c: np.asarray(c.Z).dtype == np.float32,
        "only the float32 cases fail ({failing}): check for code that depends on the dtype "
        "of Z (a cast, a constant, an integer array).",
        "only the float32 cases pass ({passing}).",
    ),
    _Feature(
        "1-D",
        lambda c: np.asarray(c.Z).ndim == 1,
        "only the 1-D cases fail ({failing}): element-wise code must work on any shape "
        "(no Z.shape[1], no loop over two axes).",
        "only the 1-D cases pass ({passing}): element-wise code must work on any shape.",
    ),
    _Feature(
        "3-D",
        lambda c: np.asarray(c.Z).ndim == 3,
        "only the 3-D case fails ({failing}): element-wise code must work on any shape "
        "(no Z.shape[1], no loop over two axes).",
        "only the 3-D cases pass ({passing}).",
    ),
    _Feature(
        "2-D",
        lambda c: np.asarray(c.Z).ndim == 2,
        "only the 2-D cases fail ({failing}).",
        "only the 2-D cases pass ({passing}) and the others fail: element-wise code must "
        "work on any shape (no Z.shape[1], no loop over two axes).",
    ),
)


def where_note(failing: list[Case], passing: list[Case]) -> Note | None:
    """Where a bug lives, when some cases pass: a constructor argument, or one property of the
    input (a single row, a kink, large |Z|, float32, a dimension) that exactly the failing (or
    exactly the passing) cases have. None when nothing separates them."""
    if not failing or not passing:
        return None
    note = parameter_note(failing, passing)
    if note is not None:
        return note
    for feature in FEATURES:
        fail_has = [feature.has(c) for c in failing]
        pass_has = [feature.has(c) for c in passing]
        ids = {
            "failing": ", ".join(c.id for c in failing),
            "passing": ", ".join(c.id for c in passing),
        }
        if all(fail_has) and not any(pass_has):
            text = feature.only_failing.format(**ids)
            return Note(f"where:{feature.name}", "Where: " + text, RANK_WHERE)
        if all(pass_has) and not any(fail_has):
            text = feature.only_passing.format(**ids)
            return Note(f"where:{feature.name}", "Where: " + text, RANK_WHERE)
    return None
