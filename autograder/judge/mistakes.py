"""The catalogue of known wrong implementations, kept beside the assignment table.

Each :class:`Mistake` is a small buggy edit of the reference: complete method
definitions that replace the class's own (or, for a wrapper, module-level
code appended to it), one sentence saying what is wrong and which formula
to check, and the phase where it shows. The same entry serves twice:

* :func:`attach` applies it to the (trusted) reference, runs every public case
  through the result in the grader's own process and stores the outputs that
  differ from the reference in ``Case.mistakes`` (with the sentence), for
  ``feedback.named_mistakes`` to recognise a student's output by value;
* :meth:`Mistake.source` turns it into a whole submission, which the tests
  grade end to end, asserting that the feedback names the mistake.

Structural mistakes (a transposed or flattened output, ``self.A`` not
stored, an input changed in place, ``dLdbeta`` not summed or missing) are
recognised from the form of what the worker returned, by
``feedback.STRUCTURAL``; their entries here carry an example submission and
take their sentence from there.

This module is instructor-side, like ``hidden_cases.py`` and the reference:
the bodies below are a line away from a solution, so the student bundle
leaves it out. Students get the mistakes' precomputed outputs on the public
cases, and their sentences, in the public case data file.
"""

from __future__ import annotations

import ast
import textwrap
import types
from dataclasses import dataclass

import numpy as np

from autograder.course import assignment, reference
from autograder.course.cases import Case, Expected
from autograder.judge import feedback


@dataclass(frozen=True)
class Mistake:
    """One known wrong implementation of one activation."""

    activation: str
    name: str
    phase: str  # forward | backward | dLdbeta: the phase where it shows first
    message: str  # one sentence: the mistake and the formula to check
    code: str  # method definitions of the class, or module code when ``module_level``
    module_level: bool = False
    structural: bool = False  # recognised by feedback.STRUCTURAL, not by its outputs

    def source(self, reference_source: str) -> str:
        """The reference with this mistake put in: a complete (buggy) submission."""
        code = textwrap.dedent(self.code).strip("\n")
        if self.module_level:
            return reference_source.rstrip("\n") + "\n\n\n" + code + "\n"
        return replace_methods(reference_source, self.activation, code)


def replace_methods(source: str, cls: str, code: str) -> str:
    """Replace (or add) the methods of class ``cls`` defined in ``code``, signatures included."""
    new = {node.name: node for node in ast.parse(code).body if isinstance(node, ast.FunctionDef)}
    if not new:
        raise ValueError("no method definition in the mistake's code")
    tree = ast.parse(source)
    lines = source.splitlines()
    target = next(
        (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls),
        None,
    )
    if target is None:
        raise KeyError(f"class {cls} not found")
    methods = {n.name: n for n in target.body if isinstance(n, ast.FunctionDef)}
    indent = " " * (target.body[-1].col_offset)
    edits: list[tuple[int, int, list[str]]] = []  # (start, end) line slices, 0-based
    added: list[str] = []
    for name, node in new.items():
        text = ast.get_source_segment(code, node)
        assert text is not None
        body = textwrap.indent(text, indent).splitlines()
        old = methods.get(name)
        if old is None:
            added.extend(["", *body])
            continue
        start = (old.decorator_list[0].lineno if old.decorator_list else old.lineno) - 1
        edits.append((start, old.end_lineno or start + 1, body))
    if added:
        end = target.end_lineno or len(lines)
        edits.append((end, end, added))
    # Bottom up, so earlier line numbers stay valid.
    for start, end, body in sorted(edits, reverse=True):
        lines[start:end] = body
    return "\n".join(lines) + "\n"


def _returns_dAdZ(activation: str) -> Mistake:
    # Wraps the correct backward, so the entry holds no formula of its own.
    return Mistake(
        activation,
        f"{activation.lower()}-returns-dAdZ",
        "backward",
        "backward returns dAdZ alone; it must return dLdZ = dLdA * dAdZ, the incoming "
        "gradient times the derivative, element by element.",
        f"""
        _correct_backward = {activation}.backward


        def _backward_returns_dAdZ(self, dLdA):
            dAdZ = _correct_backward(self, np.ones_like(dLdA))
            _correct_backward(self, dLdA)  # only dLdZ is wrong (Swish's dLdbeta is right)
            return dAdZ


        {activation}.backward = _backward_returns_dAdZ
        """,
        module_level=True,
    )


def _leaky_default(alpha: float) -> Mistake:
    return Mistake(
        "LeakyReLU",
        f"leakyrelu-default-alpha-{alpha:g}",
        "forward",
        f"with no alpha given your LeakyReLU uses the slope {alpha:g} for Z <= 0; the default "
        "is PyTorch's: def __init__(self, alpha=0.01).",
        f"""
        def __init__(self, alpha={alpha!r}):
            self.alpha = alpha
        """,
    )


def _structural(activation: str, name: str, phase: str, code: str) -> Mistake:
    return Mistake(
        activation,
        name,
        phase,
        feedback.STRUCTURAL_BY_NAME[name].text,
        code,
        structural=True,
    )


_HARDSWISH_BACKWARD = """
def backward(self, dLdA):
    Z = self.Z
    middle = (2.0 * Z + 3.0) / 6.0
    dAdZ = np.where(Z {low} -3.0, 0.0, np.where(Z {high} 3.0, middle, 1.0))
    return dLdA * dAdZ
"""

CATALOGUE: tuple[Mistake, ...] = (
    # ---------------------------------------------------------------- Sigmoid
    Mistake(
        "Sigmoid",
        "sigmoid-dAdZ-at-A",
        "backward",
        "backward evaluates the derivative at A instead of Z, sigmoid(A) * (1 - sigmoid(A)); "
        "A already is sigmoid(Z), so dAdZ = A * (1 - A).",
        """
        def backward(self, dLdA):
            s = 1.0 / (1.0 + np.exp(-self.A))
            return dLdA * s * (1.0 - s)
        """,
    ),
    # ---------------------------------------------------------------- Tanh
    Mistake(
        "Tanh",
        "tanh-dAdZ-at-A",
        "backward",
        "backward evaluates the derivative at A instead of Z, 1 - tanh(A)^2; A already is "
        "tanh(Z), so dAdZ = 1 - A^2.",
        """
        def backward(self, dLdA):
            E = np.exp(-2.0 * self.A)
            t = (1.0 - E) / (1.0 + E)
            return dLdA * (1.0 - t * t)
        """,
    ),
    Mistake(
        "Tanh",
        "tanh-1-minus-A",
        "backward",
        "backward uses dAdZ = 1 - A; the derivative of tanh is 1 - A^2 (A squared).",
        """
        def backward(self, dLdA):
            return dLdA * (1.0 - self.A)
        """,
    ),
    Mistake(
        "Tanh",
        "tanh-overflow",
        "forward",
        "forward overflows for large |Z|: (e^Z - e^-Z) / (e^Z + e^-Z) becomes inf / inf = nan; "
        "write tanh with e^(-2|Z|), which never overflows, and restore the sign of Z.",
        """
        def forward(self, Z):
            self.A = (np.exp(Z) - np.exp(-Z)) / (np.exp(Z) + np.exp(-Z))
            return self.A
        """,
    ),
    # ---------------------------------------------------------------- ReLU
    Mistake(
        "ReLU",
        "relu-dAdZ-1-at-0",
        "backward",
        "backward uses dAdZ = 1 at Z = 0; as in PyTorch, ReLU's derivative at exactly Z = 0 "
        "is 0 (dAdZ = 1 only where Z > 0).",
        """
        def forward(self, Z):
            self.Z = Z
            self.A = np.maximum(Z, 0)
            return self.A

        def backward(self, dLdA):
            return dLdA * (self.Z >= 0)
        """,
    ),
    # ---------------------------------------------------------------- LeakyReLU
    _leaky_default(0.1),
    _leaky_default(0.2),
    _leaky_default(0.3),
    Mistake(
        "LeakyReLU",
        "leakyrelu-dAdZ-1-at-0",
        "backward",
        "backward uses dAdZ = 1 at Z = 0; as in PyTorch, the slope at exactly Z = 0 is alpha "
        "(dAdZ = 1 only where Z > 0).",
        """
        def backward(self, dLdA):
            return dLdA * np.where(self.Z >= 0, 1.0, self.alpha)
        """,
    ),
    # ---------------------------------------------------------------- ELU
    Mistake(
        "ELU",
        "elu-dAdZ-1-at-0",
        "backward",
        "backward uses the positive branch's slope 1 at Z = 0; as in PyTorch, dAdZ at exactly "
        "Z = 0 is alpha * e^0 = alpha (dAdZ = 1 only where Z > 0).",
        """
        def backward(self, dLdA):
            Z = self.Z
            return dLdA * np.where(Z >= 0, 1.0, self.alpha * np.exp(np.minimum(Z, 0)))
        """,
    ),
    Mistake(
        "ELU",
        "elu-dAdZ-missing-alpha",
        "backward",
        "for Z <= 0 backward uses dAdZ = e^Z without the factor alpha; the derivative of "
        "alpha * (e^Z - 1) is alpha * e^Z.",
        """
        def backward(self, dLdA):
            Z = self.Z
            return dLdA * np.where(Z > 0, 1.0, np.exp(np.minimum(Z, 0)))
        """,
    ),
    # ---------------------------------------------------------------- CELU
    Mistake(
        "CELU",
        "celu-elu-formula",
        "forward",
        "forward uses ELU's alpha * (e^Z - 1) for Z <= 0; CELU divides by alpha inside the "
        "exponential: alpha * (e^(Z/alpha) - 1).",
        """
        def forward(self, Z):
            self.Z = Z
            self.A = np.where(Z > 0, Z, self.alpha * np.expm1(np.minimum(Z, 0)))
            return self.A
        """,
    ),
    Mistake(
        "CELU",
        "celu-dAdZ-elu-formula",
        "backward",
        "for Z <= 0 backward uses ELU's derivative alpha * e^Z; CELU's is e^(Z/alpha).",
        """
        def backward(self, dLdA):
            Z = self.Z
            return dLdA * np.where(Z > 0, 1.0, self.alpha * np.exp(np.minimum(Z, 0)))
        """,
    ),
    Mistake(
        "CELU",
        "celu-dAdZ-extra-alpha",
        "backward",
        "for Z <= 0 backward uses alpha * e^(Z/alpha); the chain rule's 1/alpha cancels the "
        "alpha in front, so dAdZ = e^(Z/alpha).",
        """
        def backward(self, dLdA):
            Z = self.Z
            return dLdA * np.where(Z > 0, 1.0, self.alpha * np.exp(np.minimum(Z, 0) / self.alpha))
        """,
    ),
    # ---------------------------------------------------------------- GELU
    Mistake(
        "GELU",
        "gelu-tanh-approximation",
        "forward",
        "forward uses the tanh approximation 0.5 Z (1 + tanh(sqrt(2/pi) (Z + 0.044715 Z^3))); "
        "use the exact A = Z * Phi(Z) = Z/2 * (1 + erf(Z / sqrt(2))).",
        """
        def forward(self, Z):
            self.Z = Z
            inner = math.sqrt(2.0 / math.pi) * (Z + 0.044715 * Z**3)
            self.A = 0.5 * Z * (1.0 + np.tanh(inner))
            return self.A
        """,
    ),
    Mistake(
        "GELU",
        "gelu-tanh-approximation-backward",
        "backward",
        "backward uses the derivative of the tanh approximation; use the exact "
        "dAdZ = Phi(Z) + Z * phi(Z), phi(Z) = e^(-Z^2/2) / sqrt(2 pi).",
        """
        def backward(self, dLdA):
            Z = self.Z
            c = math.sqrt(2.0 / math.pi)
            t = np.tanh(c * (Z + 0.044715 * Z**3))
            dAdZ = 0.5 * (1.0 + t) + 0.5 * Z * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * Z**2)
            return dLdA * dAdZ
        """,
    ),
    Mistake(
        "GELU",
        "gelu-dAdZ-only-Phi",
        "backward",
        "backward uses dAdZ = Phi(Z) only; the product rule on Z * Phi(Z) adds Z * phi(Z): "
        "dAdZ = Phi(Z) + Z * phi(Z), phi(Z) = e^(-Z^2/2) / sqrt(2 pi).",
        """
        def backward(self, dLdA):
            return dLdA * 0.5 * (1.0 + erf(self.Z / math.sqrt(2.0)))
        """,
    ),
    # ---------------------------------------------------------------- Swish
    Mistake(
        "Swish",
        "swish-dAdZ-missing-beta",
        "backward",
        "dAdZ misses the factor beta of the chain rule: dAdZ = s + beta * Z * s * (1 - s), "
        "s = sigmoid(beta Z).",
        """
        def backward(self, dLdA):
            Z, s = self.Z, self.s
            r = _sigmoid(-self.beta * Z)
            self.dLdbeta = np.sum(dLdA * Z * Z * s * r)
            return dLdA * (s + Z * s * r)
        """,
    ),
    Mistake(
        "Swish",
        "swish-dLdbeta-Z-not-squared",
        "dLdbeta",
        "dLdbeta uses Z * s * (1 - s); differentiating Z * sigmoid(beta Z) with respect to "
        "beta gives dAdbeta = Z^2 * s * (1 - s).",
        """
        def backward(self, dLdA):
            Z, s = self.Z, self.s
            r = _sigmoid(-self.beta * Z)
            self.dLdbeta = np.sum(dLdA * Z * s * r)
            return dLdA * (s + self.beta * Z * s * r)
        """,
    ),
    Mistake(
        "Swish",
        "swish-dLdbeta-mean",
        "dLdbeta",
        "dLdbeta is an average; beta is shared by every element, so its gradient is the sum "
        "of dLdA * Z^2 * s * (1 - s) over all of them.",
        """
        def backward(self, dLdA):
            Z, s = self.Z, self.s
            r = _sigmoid(-self.beta * Z)
            self.dLdbeta = np.mean(dLdA * Z * Z * s * r)
            return dLdA * (s + self.beta * Z * s * r)
        """,
    ),
    # ---------------------------------------------------------------- Softplus
    Mistake(
        "Softplus",
        "softplus-overflow",
        "forward",
        "forward overflows for large beta * Z (e^(beta Z) becomes inf); as in PyTorch, A = Z "
        "where beta * Z > threshold, and (1/beta) log(1 + e^(beta Z)) only elsewhere.",
        """
        def forward(self, Z):
            self.Z = Z
            self.A = np.log1p(np.exp(self.beta * Z)) / self.beta
            return self.A
        """,
    ),
    Mistake(
        "Softplus",
        "softplus-backward-overflow",
        "backward",
        "backward overflows for large beta * Z (e^(beta Z) / (1 + e^(beta Z)) is inf / inf = "
        "nan); dAdZ = 1 where beta * Z > threshold, sigmoid(beta Z) elsewhere.",
        """
        def backward(self, dLdA):
            E = np.exp(self.beta * self.Z)
            return dLdA * E / (1.0 + E)
        """,
    ),
    Mistake(
        "Softplus",
        "softplus-missing-inverse-beta",
        "forward",
        "forward misses the factor 1/beta: A = (1/beta) * log(1 + e^(beta Z)).",
        """
        def forward(self, Z):
            self.Z = Z
            bZ = self.beta * Z
            smooth = np.log1p(np.exp(np.minimum(bZ, self.threshold)))
            self.A = np.where(bZ > self.threshold, Z, smooth)
            return self.A
        """,
    ),
    # ---------------------------------------------------------------- Mish
    Mistake(
        "Mish",
        "mish-dAdZ-only-t",
        "backward",
        "backward uses dAdZ = tanh(softplus(Z)) only; the product rule adds Z times its "
        "derivative: dAdZ = t + Z * sigmoid(Z) * (1 - t^2), t = tanh(softplus(Z)).",
        """
        def backward(self, dLdA):
            return dLdA * self.t
        """,
    ),
    Mistake(
        "Mish",
        "mish-dAdZ-missing-sigmoid",
        "backward",
        "backward misses the chain-rule factor sigmoid(Z), the derivative of softplus: "
        "dAdZ = t + Z * sigmoid(Z) * (1 - t^2), t = tanh(softplus(Z)).",
        """
        def backward(self, dLdA):
            Z, t = self.Z, self.t
            return dLdA * (t + Z * (1.0 - t * t))
        """,
    ),
    # ---------------------------------------------------------------- Hardswish
    Mistake(
        "Hardswish",
        "hardswish-middle-slope",
        "backward",
        "for -3 < Z < 3 backward uses (Z + 3) / 6, the derivative of relu6(Z + 3) / 6 alone; "
        "the product rule on Z * (Z + 3) / 6 gives (2Z + 3) / 6.",
        """
        def backward(self, dLdA):
            Z = self.Z
            dAdZ = np.where(Z <= -3.0, 0.0, np.where(Z < 3.0, (Z + 3.0) / 6.0, 1.0))
            return dLdA * dAdZ
        """,
    ),
    Mistake(
        "Hardswish",
        "hardswish-pre-2.7-edges",
        "backward",
        "at exactly Z = -3 and Z = 3 backward gives the middle band's -0.5 and 1.5, as PyTorch "
        "before 2.7 did; PyTorch 2.13, which this assignment follows, gives 0 at Z = -3 and 1 "
        "at Z = 3 (the band -3 < Z < 3 is open).",
        _HARDSWISH_BACKWARD.format(low="<", high="<="),
    ),
    Mistake(
        "Hardswish",
        "hardswish-edge-at-minus-3",
        "backward",
        "at exactly Z = -3 backward gives the middle band's (2Z + 3) / 6 = -0.5; as in "
        "PyTorch 2.13 it is 0 there (the band -3 < Z < 3 is open).",
        _HARDSWISH_BACKWARD.format(low="<", high="<"),
    ),
    Mistake(
        "Hardswish",
        "hardswish-edge-at-3",
        "backward",
        "at exactly Z = 3 backward gives the middle band's (2Z + 3) / 6 = 1.5; as in "
        "PyTorch 2.13 it is 1 there (the band -3 < Z < 3 is open).",
        _HARDSWISH_BACKWARD.format(low="<=", high="<="),
    ),
    # ---------------------------------------------------------------- ReLU6
    Mistake(
        "ReLU6",
        "relu6-no-upper-clip",
        "forward",
        "forward does not clip at 6: A = min(max(0, Z), 6).",
        """
        def forward(self, Z):
            self.Z = Z
            self.A = np.maximum(Z, 0.0)
            return self.A
        """,
    ),
    Mistake(
        "ReLU6",
        "relu6-dAdZ-no-upper-clip",
        "backward",
        "backward gives dAdZ = 1 for Z >= 6 too; ReLU6 is flat there: dAdZ = 1 only where "
        "0 < Z < 6.",
        """
        def backward(self, dLdA):
            return dLdA * (self.Z > 0)
        """,
    ),
    Mistake(
        "ReLU6",
        "relu6-dAdZ-1-at-6",
        "backward",
        "backward gives dAdZ = 1 at exactly Z = 6; as in PyTorch it is 0 there "
        "(dAdZ = 1 only where 0 < Z < 6).",
        """
        def backward(self, dLdA):
            return dLdA * ((self.Z > 0) & (self.Z <= 6))
        """,
    ),
    Mistake(
        "ReLU6",
        "relu6-dAdZ-1-at-0",
        "backward",
        "backward gives dAdZ = 1 at exactly Z = 0; as in PyTorch it is 0 there "
        "(dAdZ = 1 only where 0 < Z < 6).",
        """
        def backward(self, dLdA):
            return dLdA * ((self.Z >= 0) & (self.Z < 6))
        """,
    ),
    # ---------------------------------------------------------------- Softmax
    Mistake(
        "Softmax",
        "softmax-wrong-axis",
        "forward",
        "forward normalizes down each column (axis=0); each row is one sample, so sum over "
        "axis=1: A[i, j] = e^Z[i, j] / sum_k e^Z[i, k].",
        """
        def forward(self, Z):
            E = np.exp(Z - np.max(Z, axis=0, keepdims=True))
            self.A = E / np.sum(E, axis=0, keepdims=True)
            return self.A
        """,
    ),
    Mistake(
        "Softmax",
        "softmax-no-max",
        "forward",
        "forward overflows for large Z (e^1000 is inf, and inf / inf is nan); subtract each "
        "row's maximum first: e^(Z - max) / sum e^(Z - max) is the same A, without overflow.",
        """
        def forward(self, Z):
            E = np.exp(Z)
            self.A = E / np.sum(E, axis=1, keepdims=True)
            return self.A
        """,
    ),
    Mistake(
        "Softmax",
        "softmax-sum-without-keepdims",
        "forward",
        "forward divides by np.sum(E, axis=1) without keepdims=True, so row i's sum divides "
        "column i; keep the summed axis: np.sum(E, axis=1, keepdims=True).",
        """
        def forward(self, Z):
            E = np.exp(Z - np.max(Z, axis=1, keepdims=True))
            self.A = E / np.sum(E, axis=1)
            return self.A
        """,
    ),
    Mistake(
        "Softmax",
        "softmax-diagonal-jacobian",
        "backward",
        "backward keeps only the diagonal of each row's Jacobian, dLdZ = dLdA * A * (1 - A); "
        "the off-diagonal J[m, n] = -A_m A_n count too: dLdZ_i = dLdA_i @ J_i with "
        "J[m, n] = A_m (delta_mn - A_n).",
        """
        def backward(self, dLdA):
            return dLdA * self.A * (1.0 - self.A)
        """,
    ),
    Mistake(
        "Softmax",
        "softmax-backward-wrong-axis",
        "backward",
        "backward combines the entries of a column instead of a row; the Jacobian J_i "
        "belongs to row i: dLdZ_i = dLdA_i @ J_i with J[m, n] = A_m (delta_mn - A_n).",
        """
        def backward(self, dLdA):
            A = self.A
            return A * (dLdA - np.sum(dLdA * A, axis=0, keepdims=True))
        """,
    ),
    # ---------------------------------------------------------------- any activation
    *(
        _returns_dAdZ(a.name)
        for a in assignment.ACTIVATIONS
        if not a.vector and a.name != "Identity"
    ),
    # ---------------------------------------------------------------- structural
    _structural(
        "Softmax",
        "output-transposed",
        "forward",
        """
        def forward(self, Z):
            E = np.exp(Z - np.max(Z, axis=1, keepdims=True))
            self.A = E / np.sum(E, axis=1, keepdims=True)
            return self.A.T
        """,
    ),
    _structural(
        "Sigmoid",
        "output-flattened",
        "forward",
        """
        def forward(self, Z):
            self.A = _sigmoid(Z)
            return self.A.reshape(-1)
        """,
    ),
    _structural(
        "Sigmoid",
        "A-not-stored",
        "backward",
        """
        def forward(self, Z):
            return _sigmoid(Z)
        """,
    ),
    _structural(
        "Sigmoid",
        "A-stored-differs",
        "backward",
        """
        def forward(self, Z):
            self.A = Z
            return _sigmoid(Z)
        """,
    ),
    _structural(
        "ReLU",
        "Z-changed-in-place",
        "forward",
        """
        def forward(self, Z):
            Z[Z < 0] = 0
            self.A = Z
            return self.A
        """,
    ),
    _structural(
        "Sigmoid",
        "dLdA-changed-in-place",
        "backward",
        """
        def backward(self, dLdA):
            dLdA *= self.A * (1.0 - self.A)
            return dLdA
        """,
    ),
    _structural(
        "Swish",
        "dLdbeta-not-summed",
        "dLdbeta",
        """
        def backward(self, dLdA):
            Z, s = self.Z, self.s
            r = _sigmoid(-self.beta * Z)
            self.dLdbeta = dLdA * Z * Z * s * r
            return dLdA * (s + self.beta * Z * s * r)
        """,
    ),
    _structural(
        "Swish",
        "dLdbeta-missing",
        "dLdbeta",
        """
        def backward(self, dLdA):
            Z, s = self.Z, self.s
            r = _sigmoid(-self.beta * Z)
            return dLdA * (s + self.beta * Z * s * r)
        """,
    ),
)

BY_NAME: dict[str, Mistake] = {m.name: m for m in CATALOGUE}


# ------------------------------------------------------------ outputs on the cases


def load_source(source: str, name: str = "_autograder_mistake") -> types.ModuleType:
    """Execute trusted module text (the reference with a mistake put in) as a module."""
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


# A mistake's outputs are kept for a case only where they differ from the reference's
# by this many tolerances somewhere: a near miss could be mistaken for correct code
# that rounds differently (Tanh's 1 - A against 1 - A^2 where Z is 1e-4).
CLEAR_MARGIN = 100.0


def _clearly_differs(case: Case, mistaken: Expected) -> bool:
    expected = case.expected
    assert expected is not None
    spec = case.spec
    atol, rtol = CLEAR_MARGIN * spec.atol, CLEAR_MARGIN * spec.rtol
    for want, got in ((expected.A, mistaken.A), (expected.dLdZ, mistaken.dLdZ)):
        if got.shape != want.shape or not np.all(np.isfinite(got)):
            return True
        if np.any(np.abs(got - want) > atol + rtol * np.abs(want)):
            return True
    if expected.dLdbeta is not None and mistaken.dLdbeta is not None:
        scale = max(abs(expected.dLdbeta), abs(expected.dLdbeta_scale or 0.0))
        return bool(abs(mistaken.dLdbeta - expected.dLdbeta) > atol + rtol * scale)
    return False


def attach(cases: list[Case], reference_source: str) -> list[Case]:
    """Fill ``case.mistakes`` of the public cases with the catalogue's outputs.

    Only outputs that clearly differ from the reference's on the case are kept
    (a mistake at a kink shows on the kink case alone). ``case.expected`` must be
    set. A mistake whose method the reference lacks (a different reference
    set with AUTOGRADER_REFERENCE) is skipped.
    """
    public = [c for c in cases if c.visibility == "public"]
    activations = {c.activation for c in public}
    for mistake in CATALOGUE:
        if mistake.structural or mistake.activation not in activations:
            continue
        try:
            module = load_source(mistake.source(reference_source))
        except (KeyError, SyntaxError, NameError, AttributeError, ValueError):
            continue
        for case in public:
            if case.activation != mistake.activation:
                continue
            mistaken = reference.run_case(module, case, trusted=False)
            if mistaken is not None and _clearly_differs(case, mistaken):
                mistaken.note = mistake.message
                case.mistakes[mistake.name] = mistaken
    return cases
