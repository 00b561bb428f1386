"""Concrete cases built from the assignment table, and the public case data file.

A case is one input (``Z``, ``dLdA``, constructor arguments) for one
activation. Its expected outputs come from the reference (instructor side)
or from the public data file shipped to students, which stores the public
inputs too, so every student grades on exactly the same numbers whatever
their numpy version draws.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autograder.course import assignment
from autograder.course.assignment import Activation, CaseSpec, Random, Values

if TYPE_CHECKING:  # type hints only: the course imports this module's siblings
    from autograder.course.course_file import Course

DATA_DIR = Path(__file__).resolve().parent / "data"
PUBLIC_DATA = DATA_DIR / "public_cases.json"
DATA_VERSION = 1


@dataclass
class Expected:
    """What the reference computes on a case (float64)."""

    A: np.ndarray
    dLdZ: np.ndarray
    dLdbeta: float | None = None
    # Sum of |terms| of dLdbeta: the scale its rounding error grows with (a sum of
    # terms that cancel can be tiny while each term carries float32 error).
    dLdbeta_scale: float | None = None
    # Outputs of a catalogued mistake: the sentence feedback shows when a student's match.
    note: str = ""

    def phase(self, phase: str) -> np.ndarray | float | None:
        """The expected value of ``phase`` (forward -> A, backward -> dLdZ)."""
        return {"forward": self.A, "backward": self.dLdZ, "dLdbeta": self.dLdbeta}[phase]


@dataclass
class Case:
    """One graded input for one activation."""

    id: str
    activation: str
    visibility: str
    kwargs: dict[str, Any]
    Z: np.ndarray
    dLdA: np.ndarray
    description: str
    expected: Expected | None = None
    # Outputs of catalogued mistakes on this case, by mistake name (feedback).
    mistakes: dict[str, Expected] = field(default_factory=dict)

    @property
    def spec(self) -> Activation:
        """The table row of this case's activation."""
        return assignment.BY_NAME[self.activation]

    def label(self) -> str:
        """How feedback names this case: its id, and its inputs when public."""
        if self.visibility == "hidden":
            return f"hidden case {self.id}"
        return f"case {self.id}: {self.description}"


def describe(spec: CaseSpec, Z: np.ndarray) -> str:
    """A one-line description of a case for feedback: shape, seed, arguments."""
    parts = []
    if isinstance(spec, Random):
        parts.append(f"random Z of shape {tuple(Z.shape)} (seed {spec.seed}, scale {spec.scale:g})")
    else:
        parts.append(f"Z = {_short(Z)}")
    if Z.dtype != np.float64:
        parts.append(str(Z.dtype))
    if spec.kwargs:
        parts.append(", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items()))
    if spec.note:
        parts.append(spec.note)
    return "; ".join(parts)


def _short(Z: np.ndarray) -> str:
    text = np.array2string(
        np.asarray(Z, dtype=np.float64),
        separator=", ",
        threshold=12,
        formatter={"float_kind": lambda x: f"{x:.6g}"},
    )
    return " ".join(text.split())


def materialize(spec: CaseSpec) -> tuple[np.ndarray, np.ndarray]:
    """The ``(Z, dLdA)`` arrays of a case spec, in the spec's dtype."""
    dtype = np.dtype(spec.dtype)
    if isinstance(spec, Random):
        rng = np.random.default_rng(spec.seed)
        Z = rng.normal(0.0, spec.scale, size=spec.shape)
        dLdA = rng.normal(0.0, 1.0, size=spec.shape)
    elif isinstance(spec, Values):
        Z = np.array(spec.Z, dtype=np.float64)
        if spec.dLdA is not None:
            dLdA = np.array(spec.dLdA, dtype=np.float64)
        else:
            dLdA = np.random.default_rng(spec.seed).normal(0.0, 1.0, size=Z.shape)
    else:  # pragma: no cover - the table only holds the two kinds
        raise TypeError(f"unknown case spec {spec!r}")
    return Z.astype(dtype), dLdA.astype(dtype)


def hidden_specs() -> dict[str, tuple[CaseSpec, ...]] | None:
    """The hidden rows of the table, or None in a student bundle (module absent)."""
    try:
        from autograder.course.hidden_cases import HIDDEN
    except ImportError:
        return None
    return HIDDEN


def build_cases(
    visibilities: tuple[str, ...] = ("public", "hidden"), course: Course | None = None
) -> list[Case]:
    """Cases in table order (hidden ones only if available).

    Without ``course``, every case of the table (what the expected-value cache
    holds); with it, only the course's graded cases, under the same ids.
    """
    rows: list[tuple[str, str, str, CaseSpec]] = []
    if course is not None:
        for visibility in ("public", "hidden"):
            if visibility in visibilities:
                rows += [(a, cid, visibility, spec) for a, cid, spec in course.cases(visibility)]
        order = {name: i for i, name in enumerate(course.names)}
        # Table order: each activation's public cases, then its hidden ones.
        rows.sort(key=lambda row: (order[row[0]], row[2] != "public"))
    else:
        hidden = hidden_specs() if "hidden" in visibilities else None
        for act in assignment.ACTIVATIONS:
            groups: list[tuple[str, tuple[CaseSpec, ...]]] = []
            if "public" in visibilities:
                groups.append(("public", act.public))
            if hidden is not None:
                groups.append(("hidden", hidden.get(act.name, ())))
            for visibility, specs in groups:
                for index, spec in enumerate(specs, start=1):
                    rows.append((act.name, f"{act.name}-{visibility[0]}{index}", visibility, spec))
    cases: list[Case] = []
    for activation, case_id, visibility, spec in rows:
        Z, dLdA = materialize(spec)
        cases.append(
            Case(
                id=case_id,
                activation=activation,
                visibility=visibility,
                kwargs=dict(spec.kwargs),
                Z=Z,
                dLdA=dLdA,
                description=describe(spec, Z),
            )
        )
    return cases


def select(cases: list[Case], course: Course) -> list[Case]:
    """The course's graded cases among ``cases`` (matched by id), in the course's order.

    Hidden cases are kept as they are where the course cannot list them (a
    platform bundle ships no hidden rows, only their data, built for this course).
    """
    public = course.case_ids("public")
    hidden = None if course.hidden is None else course.case_ids("hidden")
    order = {name: i for i, name in enumerate(course.names)}
    kept = [
        c
        for c in cases
        if c.activation in order
        and (c.id in public if c.visibility == "public" else (hidden is None or c.id in hidden))
    ]
    return sorted(kept, key=lambda c: order[c.activation])  # stable: the cases' own order


# ---------------------------------------------------------------- data file


def _encode_array(x: np.ndarray) -> dict[str, Any]:
    x = np.asarray(x)
    return {"dtype": str(x.dtype), "shape": list(x.shape), "data": _floats(x.ravel().tolist())}


def _floats(values: list[float]) -> list[Any]:
    # JSON has no inf/nan; spell them as strings (reference outputs never hold them,
    # but catalogued mistakes do: an overflowing Softplus gives inf).
    return [v if math.isfinite(v) else repr(v) for v in values]


def _decode_array(obj: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(obj["dtype"])
    if dtype.kind not in "fiub":
        raise ValueError(f"unsupported dtype {dtype} in case data")
    data = [float(v) for v in obj["data"]]
    return np.array(data, dtype=np.float64).astype(dtype).reshape(obj["shape"])


def _encode_expected(e: Expected) -> dict[str, Any]:
    out: dict[str, Any] = {"A": _encode_array(e.A), "dLdZ": _encode_array(e.dLdZ)}
    if e.dLdbeta is not None:
        out["dLdbeta"] = _floats([float(e.dLdbeta)])[0]
    if e.dLdbeta_scale is not None:
        out["dLdbeta_scale"] = _floats([float(e.dLdbeta_scale)])[0]
    if e.note:
        out["note"] = e.note
    return out


def _decode_expected(obj: dict[str, Any]) -> Expected:
    beta = obj.get("dLdbeta")
    scale = obj.get("dLdbeta_scale")
    return Expected(
        A=_decode_array(obj["A"]),
        dLdZ=_decode_array(obj["dLdZ"]),
        dLdbeta=None if beta is None else float(beta),
        dLdbeta_scale=None if scale is None else float(scale),
        note=str(obj.get("note", "")),
    )


def dumps_case_data(cases: list[Case]) -> str:
    """Serialize cases with their expected outputs (and mistakes) as JSON text."""
    rows = []
    for case in cases:
        if case.expected is None:
            raise ValueError(f"case {case.id} has no expected outputs")
        row: dict[str, Any] = {
            "id": case.id,
            "activation": case.activation,
            "visibility": case.visibility,
            "kwargs": case.kwargs,
            "description": case.description,
            "Z": _encode_array(case.Z),
            "dLdA": _encode_array(case.dLdA),
            "expected": _encode_expected(case.expected),
        }
        if case.mistakes:
            row["mistakes"] = {k: _encode_expected(v) for k, v in case.mistakes.items()}
        rows.append(row)
    doc = {
        "version": DATA_VERSION,
        "note": "Generated by `autograder handout` from the reference; do not edit.",
        "cases": rows,
    }
    return json.dumps(doc, indent=1) + "\n"


def loads_case_data(text: str) -> list[Case]:
    """Parse the JSON written by :func:`dumps_case_data`."""
    doc = json.loads(text)
    if doc.get("version") != DATA_VERSION:
        raise ValueError(f"case data version {doc.get('version')!r}, expected {DATA_VERSION}")
    cases = []
    for row in doc["cases"]:
        cases.append(
            Case(
                id=row["id"],
                activation=row["activation"],
                visibility=row["visibility"],
                kwargs=dict(row["kwargs"]),
                Z=_decode_array(row["Z"]),
                dLdA=_decode_array(row["dLdA"]),
                description=row["description"],
                expected=_decode_expected(row["expected"]),
                mistakes={k: _decode_expected(v) for k, v in row.get("mistakes", {}).items()},
            )
        )
    return cases


def load_case_data(path: Path = PUBLIC_DATA) -> list[Case]:
    """Read a case data file (the public one by default)."""
    return loads_case_data(path.read_text(encoding="utf-8"))
