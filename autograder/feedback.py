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

from autograder import compare
from autograder import outputs as out
from autograder.cases import Case, Expected
from autograder.outputs import CaseOutput, RunOutput
from autograder.runner import Phase

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
        lambda case, phase, output: phase == "dLdbeta" and output.dLdbeta.status == out.MISSING,
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
# (checks.SHOWN_FAILURES; the others are only listed by id).
PROBED_PER_ACTIVATION = 3
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

    Only the first few failing cases of each activation are probed: the ones
    whose feedback is shown in full.
    """
    requests: dict[str, list[np.ndarray]] = {}
    per_activation: dict[str, int] = {}
    for case in cases:
        output = run.cases.get(case.id)
        if case.visibility != "public" or output is None or not _backward_fails(case, output):
            continue
        if per_activation.get(case.activation, 0) >= PROBED_PER_ACTIVATION:
            continue
        probes = probe_inputs(case, output)
        if probes:
            requests[case.id] = probes
            per_activation[case.activation] = per_activation.get(case.activation, 0) + 1
    return requests


PROBE_PHASE = "probes"


def probe_phase(cases: list[Case], run: RunOutput) -> Phase | None:
    """The feedback-only phase probing the public cases whose backward failed.

    It runs in the same child right after the public cases (before any hidden
    input exists there), is not graded (a crash or hang in it costs nothing),
    and submissions whose backward passes skip it.
    """
    requests = probe_requests(cases, run)
    if not requests:
        return None
    subset = [c for c in cases if c.id in requests]
    return Phase(PROBE_PHASE, subset, show=True, probes=requests, graded=False)


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
    at = f"at {list(index)}" if index else "at the only element"
    return (
        f"e.g. {at} where Z = {compare.fmt(z)}: your dLdZ = {compare.fmt(float(got[index]))}, "
        f"differences of your forward give {compare.fmt(float(check.fd[index]))}"
    )


def self_check_text(case: Case, output: CaseOutput) -> str:
    """The verdict of :func:`self_check` as one feedback line ("" when it cannot tell)."""
    check = self_check(case, output)
    if check is None or not check.checked.any():
        return ""
    got = output.backward.value
    assert got is not None and case.expected is not None
    spec = case.spec
    failing = ~compare.close(case.expected.dLdZ, got, spec.rtol, spec.atol)
    disagree = check.checked & ~check.agrees
    n, k = int(check.checked.sum()), int(disagree.sum())
    head = "Self-check (central finite differences of your own forward): "
    if k:
        where = f"at {k} of the {n} elements checked, {_example(case, got, check, disagree)}"
        if check.forward_ok:
            return (
                head + "your forward is right on this case, but your backward does not match "
                f"your own forward ({where}): the derivative in backward is what to fix."
            )
        return (
            head + "both: your forward is wrong on this case, and your backward does not "
            f"match your own forward either ({where}). Fix forward first, then make backward "
            "its derivative."
        )
    if (failing & check.checked).any():
        if not check.forward_ok:
            return (
                head + "your forward is wrong on this case; your backward matches your own "
                f"forward (all {n} elements checked agree), so it differentiates the wrong "
                "function: fix the formula in forward, then backward to match."
            )
        return (
            head + "your backward matches your own forward to about four digits, but not to "
            "the grading tolerance: look for a small inaccuracy (an approximation, a rounded "
            "constant, low precision)."
        )
    # Every element that differs is out of the finite differences' reach.
    if (failing & check.near_kink).any():
        where = (
            f"the elements that differ sit at {_kinks_text(case)} (or within a step of it), "
            "where the derivative takes the value PyTorch chose"
        )
        advice = "check that value (see the docstring)"
    else:
        where = (
            f"the elements that differ have large |Z| (beyond {FD_MAX_Z:g}) or are not finite, "
            "where finite differences cannot help"
        )
        advice = "make backward safe for large |Z|"
    if not check.forward_ok:
        advice = "but your forward is wrong on this case: fix it first"
    return (
        head + f"where finite differences can be trusted your backward matches your own "
        f"forward; {where}: {advice}."
    )


# ------------------------------------------------------------ hints of one case


def _forward_wrong(case: Case, output: CaseOutput) -> bool:
    value = output.forward.value
    if output.forward.status != out.OK or value is None or case.expected is None:
        return True
    spec = case.spec
    expected = case.expected.A
    return value.shape != expected.shape or not compare.all_close(
        expected, value, spec.rtol, spec.atol
    )


def case_hints(
    case: Case, phase: str, output: CaseOutput, result: compare.Comparison | None
) -> str:
    """Extra lines (each starting with a newline) explaining a failed case."""
    hints: list[str] = []
    mistakes = named_mistakes(case, phase, output)
    for name, sentence in mistakes[:SHOWN_MISTAKES]:
        hints.append(f"{MISTAKE_PREFIX} ({name}): {sentence}")
    verdict = ""
    if phase == "backward" and result is not None and not result.passed:
        verdict = self_check_text(case, output)
        if verdict:
            hints.append(verdict)
    # The self-check's verdict already says whether forward is wrong.
    forward_failed = output.forward.status == out.OK and _forward_wrong(case, output)
    if phase in ("backward", "dLdbeta") and not verdict and forward_failed:
        hints.append("Hint: forward is also wrong on this case; fix forward first.")
    warnings = output.phase(phase).info.get("warnings") or []
    if warnings and result is not None:
        got = output.phase(phase).value
        if got is not None and not np.all(np.isfinite(got)):
            hints.append(
                "Hint: numpy warned (" + "; ".join(warnings) + "); the result holds inf or nan. "
                "Rewrite the formula so that large |Z| cannot overflow."
            )
        else:
            hints.append("numpy warned: " + "; ".join(warnings))
    return "".join("\n" + h for h in hints)
