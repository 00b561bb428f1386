"""What came back from a submission's worker, as the grader holds it.

Every value here was validated and converted to a plain float64 ``ndarray``
(or is None) before it was stored; strings came from the worker and are
only ever shown for public cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Outcome of one call of student code.
OK = "ok"
ERROR = "error"  # the student's code raised
NOT_IMPLEMENTED = "not_implemented"
TIMEOUT = "timeout"
CRASHED = "crashed"  # the worker process died (os._exit, segfault, kill)
SKIPPED = "skipped"  # not run because an earlier step failed
MISSING = "missing"  # an attribute (self.dLdbeta) or class was absent
API = "api"  # a method that cannot take its input (backward(self) of the Spring 2023 API)


@dataclass
class PhaseOutput:
    """The outcome of one phase (forward, backward, dLdbeta) of one case."""

    status: str
    value: np.ndarray | None = None
    message: str = ""
    # What the student returned: type, dtype and shape, as the worker saw them.
    info: dict = field(default_factory=dict)


@dataclass
class CaseOutput:
    """Everything the worker reported about one case."""

    id: str
    forward: PhaseOutput
    backward: PhaseOutput
    dLdbeta: PhaseOutput
    stored_A: str | None = None
    Z_modified: bool = False
    dLdA_modified: bool = False
    probes: list[np.ndarray | None] = field(default_factory=list)
    # The module defines no class of this name (every phase is then MISSING).
    class_missing: bool = False

    def phase(self, name: str) -> PhaseOutput:
        """The output of phase ``name``."""
        return {"forward": self.forward, "backward": self.backward, "dLdbeta": self.dLdbeta}[name]

    @classmethod
    def failed(cls, case_id: str, status: str, message: str) -> CaseOutput:
        """A case whose every phase ended with ``status`` (timeout, crash, ...)."""
        return cls(
            id=case_id,
            forward=PhaseOutput(status, message=message),
            backward=PhaseOutput(status, message=message),
            dLdbeta=PhaseOutput(status, message=message),
        )


@dataclass
class RunOutput:
    """The outcome of running a submission on a list of cases."""

    cases: dict[str, CaseOutput] = field(default_factory=dict)
    import_status: str = OK
    import_message: str = ""
    stdout: str = ""
    sandbox: str = ""
    # The module's own top-level class names, as the worker reported them after the
    # import (capped plain strings): feedback's "did you mean GELU?".
    classes: list[str] = field(default_factory=list)
