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


def run_case(module: ModuleType, case: Case) -> Expected:
    """Run one case through a trusted implementation, in float64.

    float32 inputs are widened first (exactly), so the expected values of a
    float32 case are the true float64 results on those float32 numbers.
    """
    cls = getattr(module, case.activation)
    obj = cls(**case.kwargs)
    Z = np.asarray(case.Z, dtype=np.float64).copy()
    dLdA = np.asarray(case.dLdA, dtype=np.float64).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        A = np.asarray(obj.forward(Z), dtype=np.float64).copy()
        dLdZ = np.asarray(obj.backward(dLdA), dtype=np.float64).copy()
    beta = getattr(obj, "dLdbeta", None)
    if beta is None:
        return Expected(A=A, dLdZ=dLdZ)
    # dLdbeta = sum(dLdA * dAdbeta) with dAdbeta >= 0 for Swish, so the same
    # backward on |dLdA| gives the sum of |terms|.
    twin = cls(**case.kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twin.forward(Z.copy())
        twin.backward(np.abs(dLdA))
    return Expected(A=A, dLdZ=dLdZ, dLdbeta=float(beta), dLdbeta_scale=float(twin.dLdbeta))


def attach_expected(module: ModuleType, cases: list[Case]) -> list[Case]:
    """Fill ``case.expected`` for every case from the reference module."""
    for case in cases:
        case.expected = run_case(module, case)
    return cases
