"""The reference implementation: where it lives and what it computes.

Only the grader's own (trusted) process imports the reference. Student code
never runs in a process that has it loaded.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np

from autograder import files
from autograder.course.cases import Case, Expected


def load_module(path: Path, name: str = "_autograder_reference") -> ModuleType:
    """Import a (trusted) activation module from a file path."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_reference() -> ModuleType | None:
    """The reference module, or None when it is not available."""
    path = files.reference_path()
    return None if path is None else load_module(path)


def run_case(module: ModuleType, case: Case, trusted: bool = True) -> Expected | None:
    """Run one case through an implementation, in float64.

    float32 inputs are widened first (exactly), so the expected values of a
    float32 case are the true float64 results on those float32 numbers.

    ``trusted`` (the reference): numpy warnings are errors, an exception
    propagates, and Swish's dLdbeta comes with its scale. Otherwise (a
    catalogued mistake, run for the feedback): warnings are silenced, since
    overflow is part of some mistakes; an exception gives None (a broadcasting
    error leaves nothing to recognise on this case); dLdbeta is kept only when
    it is one number.
    """
    Z = np.asarray(case.Z, dtype=np.float64).copy()
    dLdA = np.asarray(case.dLdA, dtype=np.float64).copy()
    with warnings.catch_warnings(), np.errstate(**({} if trusted else {"all": "ignore"})):
        warnings.simplefilter("error" if trusted else "ignore")
        try:
            obj = getattr(module, case.activation)(**case.kwargs)
            A = np.array(obj.forward(Z), dtype=np.float64)
            dLdZ = np.array(obj.backward(dLdA), dtype=np.float64)
        except Exception:
            if trusted:
                raise
            return None
    beta = getattr(obj, "dLdbeta", None)
    if beta is None or np.size(beta) != 1:
        return Expected(A=A, dLdZ=dLdZ)
    beta = float(np.asarray(beta, dtype=np.float64).reshape(()))
    if not trusted:
        return Expected(A=A, dLdZ=dLdZ, dLdbeta=beta)
    # dLdbeta = sum(dLdA * dAdbeta) with dAdbeta >= 0 for Swish, so the same
    # backward on |dLdA| gives the sum of |terms|.
    twin = getattr(module, case.activation)(**case.kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twin.forward(Z.copy())
        twin.backward(np.abs(dLdA))
    return Expected(A=A, dLdZ=dLdZ, dLdbeta=beta, dLdbeta_scale=float(twin.dLdbeta))


def attach_expected(module: ModuleType, cases: list[Case]) -> list[Case]:
    """Fill ``case.expected`` for every case from the reference module."""
    for case in cases:
        case.expected = run_case(module, case)
    return cases
