"""Hints added to a failing public case: what the likely mistake is.

The checks decide pass or fail; this module only explains. It looks at
what the worker observed (was ``self.A`` stored, did numpy warn, did
forward fail too) and returns extra lines for the case's message.
"""

from __future__ import annotations

import numpy as np

from autograder import compare
from autograder import outputs as out
from autograder.cases import Case
from autograder.outputs import CaseOutput


def _forward_wrong(case: Case, output: CaseOutput) -> bool:
    value = output.forward.value
    if output.forward.status != out.OK or value is None or case.expected is None:
        return True
    spec = case.spec
    expected = case.expected.A
    return value.shape != expected.shape or not bool(
        compare.close(expected, value, spec.rtol, spec.atol).all()
    )


def case_hints(
    case: Case, phase: str, output: CaseOutput, result: compare.Comparison | None
) -> str:
    """Extra lines (each starting with a newline) explaining a failed case."""
    hints: list[str] = []
    if phase in ("backward", "dLdbeta"):
        if output.stored_A in ("missing", "none"):
            hints.append(
                f"Hint: {case.activation}.forward did not store its output in self.A; "
                "backward needs it (the class must remember A between the two calls)."
            )
        elif output.stored_A == "different":
            hints.append(
                f"Hint: {case.activation}.forward stored something in self.A that differs "
                "from what it returned."
            )
        if output.forward.status == out.OK and _forward_wrong(case, output):
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
