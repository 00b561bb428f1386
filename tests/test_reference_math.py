"""The reference against the mathematics, with no PyTorch needed.

* Each activation's forward formula is written again here, independently, in
  mpmath; its derivative comes from central differences at 50 significant
  digits (step 1e-20), so "exact" below means exact to far more digits than
  float64 holds. The reference must agree element-wise to
  ``|ours - exact| <= 1e-12 + 1e-10 * |exact|``, and deliberately wrong
  derivatives must fail that same check (so the check can tell them apart).
* Exact kinks are pinned by explicit values (PyTorch 2.13's choices).
* hypothesis properties: softmax rows, backward == vector-Jacobian product of
  forward, finite and warning-free for |Z| <= 1000, float32 accuracy.
* The published course values, vectorization, imports, and the forward /
  backward contract (store A, leave Z and dLdA alone).
"""

import ast
import inspect
import math
import sys
import warnings

import numpy as np
import pytest
from helpers import CONFIGS, SCALAR_CONFIGS, kinks
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mpmath import mp, mpf

from autograder import files
from autograder.course import assignment, reference

RTOL = 1e-10
ATOL = 1e-12
MP_DPS = 50
H = mpf("1e-20")  # central-difference step, at MP_DPS digits

ref = reference.load_module(files.REFERENCE_PATH)
REFERENCE_SOURCE = files.REFERENCE_PATH.read_text(encoding="utf-8")

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

CLASS_NAMES = sorted({name for name, _ in CONFIGS})


def config_id(config):
    name, kwargs = config
    return f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"


# --------------------------------------------------------------------------- #
# The math, written independently in mpmath (PyTorch semantics)
# --------------------------------------------------------------------------- #


def _softplus_mp(z, beta=1.0, threshold=20.0):
    return z if beta * z > threshold else mp.log1p(mp.exp(beta * z)) / beta


MATH = {
    "Identity": lambda z: z,
    "Sigmoid": lambda z: 1 / (1 + mp.exp(-z)),
    "Tanh": lambda z: mp.tanh(z),
    "ReLU": lambda z: z if z > 0 else mpf(0),
    "LeakyReLU": lambda z, alpha=0.01: z if z > 0 else alpha * z,
    "ELU": lambda z, alpha=1.0: z if z > 0 else alpha * mp.expm1(z),
    "CELU": lambda z, alpha=1.0: max(mpf(0), z) + min(mpf(0), alpha * mp.expm1(z / alpha)),
    "GELU": lambda z: z * mp.ncdf(z),
    "Swish": lambda z, beta=1.0: z / (1 + mp.exp(-beta * z)),
    "Softplus": _softplus_mp,
    "Mish": lambda z: z * mp.tanh(mp.log1p(mp.exp(z))),
    "Hardswish": lambda z: z * min(max(z + 3, mpf(0)), mpf(6)) / 6,
    "ReLU6": lambda z: min(max(z, mpf(0)), mpf(6)),
}


def softmax_mp(row):
    m = max(row)
    E = [mp.exp(z - m) for z in row]
    S = mp.fsum(E)
    return [e / S for e in E]


def near_kink(name, kwargs, Z):
    """Where a central difference would straddle a kink (those are tested by value)."""
    mask = np.zeros(np.shape(Z), dtype=bool)
    for k in kinks(name, kwargs):
        mask |= np.abs(np.asarray(Z, dtype=np.float64) - k) <= 1e-12 * max(1.0, abs(k))
    return mask


def exact(name, kwargs, Z, dLdA):
    """Exact A, dLdZ (central differences at 50 digits) and, for Swish, dLdbeta."""
    Z = np.asarray(Z, dtype=np.float64)
    dLdA = np.asarray(dLdA, dtype=np.float64)
    A = np.empty(Z.shape)
    dLdZ = np.empty(Z.shape)
    dLdbeta = None
    with mp.workdps(MP_DPS):
        if name == "Softmax":
            for i in range(Z.shape[0]):
                row = [mpf(float(z)) for z in Z[i]]
                g = [mpf(float(d)) for d in dLdA[i]]
                A[i] = [float(a) for a in softmax_mp(row)]
                for n in range(len(row)):
                    up = softmax_mp([z + H if j == n else z for j, z in enumerate(row)])
                    down = softmax_mp([z - H if j == n else z for j, z in enumerate(row)])
                    # dLdZ[i, n] = sum_m dLdA[i, m] * J[m, n]
                    J_col = [(u - d) / (2 * H) for u, d in zip(up, down, strict=True)]
                    dLdZ[i, n] = float(mp.fsum(gm * Jm for gm, Jm in zip(g, J_col, strict=True)))
            return A, dLdZ, None
        f = MATH[name]
        terms = []
        for idx in np.ndindex(Z.shape):
            z = mpf(float(Z[idx]))
            g = mpf(float(dLdA[idx]))
            A[idx] = float(f(z, **kwargs))
            dLdZ[idx] = float(g * (f(z + H, **kwargs) - f(z - H, **kwargs)) / (2 * H))
            if name == "Swish":
                beta = mpf(kwargs.get("beta", 1.0))
                terms.append(g * (f(z, beta=beta + H) - f(z, beta=beta - H)) / (2 * H))
        if name == "Swish":
            dLdbeta = float(mp.fsum(terms))
    return A, dLdZ, dLdbeta


# --------------------------------------------------------------------------- #
# Running the reference and comparing
# --------------------------------------------------------------------------- #


def run(obj, Z, dLdA):
    """forward then backward, failing on any numpy warning.

    Overflow, division by zero and invalid operations raise; underflow stays
    silent on purpose (exp(-1000) == 0.0 is the right answer).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            A = obj.forward(Z.copy())
            dLdZ = obj.backward(dLdA.copy())
    return A, dLdZ


def excess(ours, expected, rtol=RTOL, atol=ATOL):
    """max over elements of |ours - expected| / (atol + rtol |expected|); <= 1 passes."""
    ours = np.asarray(ours, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert ours.shape == expected.shape, f"shape {ours.shape} != {expected.shape}"
    if ours.size == 0:
        return 0.0
    ratio = np.atleast_1d(np.abs(ours - expected) / (atol + rtol * np.abs(expected)))
    ratio[~np.isfinite(ratio)] = np.inf
    return float(ratio.max())


def math_excess(obj, name, kwargs, Z, dLdA):
    """How far forward, backward (away from kinks) and dLdbeta are from the exact values."""
    Z = np.asarray(Z, dtype=np.float64)
    dLdA = np.asarray(dLdA, dtype=np.float64)
    A, dLdZ = run(obj, Z, dLdA)
    A_exact, dLdZ_exact, dLdbeta_exact = exact(name, kwargs, Z, dLdA)
    smooth = ~near_kink(name, kwargs, Z)
    result = {
        "forward": excess(A, A_exact),
        "backward": excess(np.asarray(dLdZ)[smooth], dLdZ_exact[smooth]),
    }
    if dLdbeta_exact is not None and smooth.all():
        result["dLdbeta"] = excess(obj.dLdbeta, dLdbeta_exact)
    return result


def assert_matches_math(name, kwargs, Z, dLdA):
    obj = getattr(ref, name)(**kwargs)
    result = math_excess(obj, name, kwargs, Z, dLdA)
    bad = {phase: r for phase, r in result.items() if not r <= 1.0}
    assert not bad, (
        f"{config_id((name, kwargs))}: off by more than 1e-12 + 1e-10|exact| "
        f"(worst ratio per phase {bad}) on Z={np.asarray(Z)!r}"
    )


GRID = np.concatenate(
    [
        np.linspace(-8.0, 8.0, 65),
        [-1000.0, -745.0, -710.0, -709.8, -100.0, -30.0, -20.5, -1e-8, -1e-300],
        [1e-300, 1e-8, 5.0 + 2**-40, 9.75, 10.25, 19.75, 20.25, 30.0, 100.0, 709.8, 710.0, 745.0],
        [1000.0],
    ]
)


@pytest.mark.parametrize("config", SCALAR_CONFIGS, ids=config_id)
def test_scalar_matches_math_on_a_grid(config):
    name, kwargs = config
    rng = np.random.default_rng(1)
    Z = GRID.reshape(3, 29)  # (N, C)
    assert_matches_math(name, kwargs, Z, rng.normal(size=Z.shape))
    assert_matches_math(name, kwargs, GRID, np.ones_like(GRID))  # dLdZ == dAdZ


@pytest.mark.parametrize("shape", [(4, 5), (1, 6), (5, 1), (3, 2)], ids=str)
def test_softmax_matches_math(shape):
    rng = np.random.default_rng(list(shape))
    Z = rng.normal(scale=4.0, size=shape)
    assert_matches_math("Softmax", {}, Z, rng.normal(size=shape))
    big = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0], [-745.0, -710.0, -709.8]])
    assert_matches_math("Softmax", {}, big, rng.normal(size=big.shape))


# --------------------------------------------------------------------------- #
# Wrong derivatives fail the same check
# --------------------------------------------------------------------------- #


class TanhOneMinusA(ref.Tanh):
    def backward(self, dLdA):
        return dLdA * (1.0 - self.A)


class GELUTanhApprox(ref.GELU):
    K = math.sqrt(2.0 / math.pi)

    def forward(self, Z):
        self.Z = Z
        self.A = 0.5 * Z * (1.0 + np.tanh(self.K * (Z + 0.044715 * Z**3)))
        return self.A

    def backward(self, dLdA):
        Z = self.Z
        t = np.tanh(self.K * (Z + 0.044715 * Z**3))
        dAdZ = 0.5 * (1.0 + t) + 0.5 * Z * (1.0 - t * t) * self.K * (1.0 + 3 * 0.044715 * Z**2)
        return dLdA * dAdZ


class GELUBackwardOnlyApprox(ref.GELU):
    K = GELUTanhApprox.K
    backward = GELUTanhApprox.backward


class SoftmaxDiagonalOnly(ref.Softmax):
    def backward(self, dLdA):
        return dLdA * self.A * (1.0 - self.A)


class SigmoidOfZTimesOneMinusZ(ref.Sigmoid):
    def forward(self, Z):
        self.Z = Z
        return super().forward(Z)

    def backward(self, dLdA):
        return dLdA * self.A * (1.0 - self.Z)


class SwishWithoutBetaInDerivative(ref.Swish):
    def backward(self, dLdA):
        s = self.s
        self.dLdbeta = np.sum(dLdA * self.Z**2 * s * (1.0 - s))
        return dLdA * (s + self.Z * s * (1.0 - s))


class SwishDLdbetaWithBeta(ref.Swish):
    def backward(self, dLdA):
        dLdZ = super().backward(dLdA)
        self.dLdbeta = self.beta * self.dLdbeta
        return dLdZ


class ELUWithoutAlpha(ref.ELU):
    def backward(self, dLdA):
        return dLdA * np.where(self.Z > 0, 1.0, np.exp(np.minimum(self.Z, 0)))


class CELUWithAlpha(ref.CELU):
    def backward(self, dLdA):
        return dLdA * np.where(
            self.Z > 0, 1.0, self.alpha * np.exp(np.minimum(self.Z, 0) / self.alpha)
        )


class MishWithoutSigmoid(ref.Mish):
    def backward(self, dLdA):
        return dLdA * (self.t + self.Z * (1.0 - self.t**2))


class HardswishMiddleZOver3(ref.Hardswish):
    def backward(self, dLdA):
        Z = self.Z
        return dLdA * np.where(Z <= -3.0, 0.0, np.where(Z < 3.0, Z / 3.0, 1.0))


class SoftplusWithoutBeta(ref.Softplus):
    def backward(self, dLdA):
        return dLdA * np.where(self.beta * self.Z > self.threshold, 1.0, ref._sigmoid(self.Z))


MUTANTS = [
    (TanhOneMinusA, "Tanh", {}, "backward"),
    (GELUTanhApprox, "GELU", {}, "forward"),
    (GELUBackwardOnlyApprox, "GELU", {}, "backward"),
    (SoftmaxDiagonalOnly, "Softmax", {}, "backward"),
    (SigmoidOfZTimesOneMinusZ, "Sigmoid", {}, "backward"),
    (SwishWithoutBetaInDerivative, "Swish", {"beta": 2.0}, "backward"),
    (SwishDLdbetaWithBeta, "Swish", {"beta": 2.0}, "dLdbeta"),
    (ELUWithoutAlpha, "ELU", {"alpha": 2.0}, "backward"),
    (CELUWithAlpha, "CELU", {"alpha": 2.0}, "backward"),
    (MishWithoutSigmoid, "Mish", {}, "backward"),
    (HardswishMiddleZOver3, "Hardswish", {}, "backward"),
    (SoftplusWithoutBeta, "Softplus", {"beta": 2.0}, "backward"),
]


@pytest.mark.parametrize(
    ("mutant", "name", "kwargs", "phase"), MUTANTS, ids=[m[0].__name__ for m in MUTANTS]
)
def test_a_wrong_implementation_fails_the_math_check(mutant, name, kwargs, phase):
    rng = np.random.default_rng(2)
    shape = (4, 5)
    Z = rng.normal(scale=3.0, size=shape)
    dLdA = rng.normal(size=shape)
    right = math_excess(getattr(ref, name)(**kwargs), name, kwargs, Z, dLdA)
    wrong = math_excess(mutant(**kwargs), name, kwargs, Z, dLdA)
    assert all(r <= 1.0 for r in right.values()), right
    assert wrong[phase] > 1.0, f"{mutant.__name__} passed the {phase} check: {wrong}"


# --------------------------------------------------------------------------- #
# Exact kinks, by value (PyTorch 2.13: DESIGN.md's corrections win)
# --------------------------------------------------------------------------- #


def _softplus_at_threshold(beta, threshold):
    # At beta * Z == threshold exactly PyTorch still takes the smooth branch.
    with mp.workdps(MP_DPS):
        t = mpf(threshold)
        return float(mp.log1p(mp.exp(t)) / beta), float(1 / (1 + mp.exp(-t)))


KINK_VALUES = [
    # (class, kwargs, Z, A, dAdZ)
    ("ReLU", {}, 0.0, 0.0, 0.0),
    ("LeakyReLU", {}, 0.0, 0.0, 0.01),
    ("LeakyReLU", {"alpha": 0.2}, 0.0, 0.0, 0.2),
    ("ELU", {}, 0.0, 0.0, 1.0),
    ("ELU", {"alpha": 2.0}, 0.0, 0.0, 2.0),
    ("ELU", {"alpha": 0.5}, 0.0, 0.0, 0.5),
    ("CELU", {}, 0.0, 0.0, 1.0),
    ("CELU", {"alpha": 2.0}, 0.0, 0.0, 1.0),
    ("CELU", {"alpha": 0.5}, 0.0, 0.0, 1.0),
    ("ReLU6", {}, 0.0, 0.0, 0.0),
    ("ReLU6", {}, 6.0, 6.0, 0.0),
    ("Hardswish", {}, -3.0, 0.0, 0.0),
    ("Hardswish", {}, 3.0, 3.0, 1.0),
    ("Softplus", {}, 20.0, *_softplus_at_threshold(1.0, 20.0)),
    ("Softplus", {"beta": 2.0}, 10.0, *_softplus_at_threshold(2.0, 20.0)),
    ("Softplus", {"threshold": 10.0}, 10.0, *_softplus_at_threshold(1.0, 10.0)),
    ("Softplus", {"beta": 2.0, "threshold": 10.0}, 5.0, *_softplus_at_threshold(2.0, 10.0)),
    # just past the threshold: A = Z and dAdZ = 1 exactly
    ("Softplus", {}, float(np.nextafter(20.0, 21.0)), float(np.nextafter(20.0, 21.0)), 1.0),
    (
        "Softplus",
        {"beta": 2.0},
        float(np.nextafter(10.0, 11.0)),
        float(np.nextafter(10.0, 11.0)),
        1.0,
    ),
]


def kink_excess(obj, Z, A_expected, dAdZ_expected):
    Z = np.array([[Z, Z], [Z, Z]])  # (N, C), every element at the kink
    dLdA = np.array([[1.0, -2.0], [0.5, 3.0]])
    A, dLdZ = run(obj, Z, dLdA)
    return max(excess(A, np.full(Z.shape, A_expected)), excess(dLdZ, dLdA * dAdZ_expected))


@pytest.mark.parametrize(
    ("name", "kwargs", "Z", "A", "dAdZ"),
    KINK_VALUES,
    ids=[f"{k[0]}{k[1]}@{k[2]}" for k in KINK_VALUES],
)
def test_value_at_a_kink(name, kwargs, Z, A, dAdZ):
    assert kink_excess(getattr(ref, name)(**kwargs), Z, A, dAdZ) <= 1.0


class ReLUOneAtZero(ref.ReLU):
    def backward(self, dLdA):
        return dLdA * (self.A >= 0)


class HardswishClosedBand(ref.Hardswish):
    # The original table: (2Z + 3) / 6 on the closed band -3 <= Z <= 3.
    def backward(self, dLdA):
        Z = self.Z
        return dLdA * np.where(Z < -3.0, 0.0, np.where(Z <= 3.0, (2.0 * Z + 3.0) / 6.0, 1.0))


class ReLU6OneAtSix(ref.ReLU6):
    def backward(self, dLdA):
        return dLdA * ((self.Z > 0) & (self.Z <= 6))


class SoftplusThresholdInclusive(ref.Softplus):
    def forward(self, Z):
        self.Z = Z
        self.A = np.where(
            self.beta * Z >= self.threshold, Z, np.logaddexp(0.0, self.beta * Z) / self.beta
        )
        return self.A


@pytest.mark.parametrize(
    ("mutant", "kwargs", "Z"),
    [
        (ReLUOneAtZero, {}, 0.0),
        (HardswishClosedBand, {}, -3.0),
        (HardswishClosedBand, {}, 3.0),
        (ReLU6OneAtSix, {}, 6.0),
        (SoftplusThresholdInclusive, {}, 20.0),
    ],
    ids=["ReLU'(0)=1", "Hardswish'(-3)=-0.5", "Hardswish'(3)=1.5", "ReLU6'(6)=1", "Softplus>=thr"],
)
def test_a_wrong_kink_fails_the_kink_check(mutant, kwargs, Z):
    ((name, _, _, A, dAdZ),) = [
        row
        for row in KINK_VALUES
        if issubclass(mutant, getattr(ref, row[0])) and row[1:3] == (kwargs, Z)
    ]
    assert kink_excess(mutant(**kwargs), Z, A, dAdZ) > 1.0
    assert kink_excess(getattr(ref, name)(**kwargs), Z, A, dAdZ) <= 1.0


# --------------------------------------------------------------------------- #
# hypothesis properties
# --------------------------------------------------------------------------- #

BOUND = 1e3


def _z_elements(width=64):
    return st.one_of(
        st.floats(-BOUND, BOUND, width=width),
        st.floats(-10.0, 10.0, width=width),
    )


def inputs(scalar=True, dtype=np.float64, max_side=3):
    """(Z, dLdA) of one shape: 1-D to 3-D for scalar activations, (N, C) for Softmax."""
    width = 32 if dtype == np.float32 else 64
    if scalar:
        shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=max_side)
    else:
        shapes = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=max_side + 1)
    return shapes.flatmap(
        lambda shape: st.tuples(
            hnp.arrays(dtype, shape, elements=_z_elements(width)),
            hnp.arrays(dtype, shape, elements=st.floats(-2.0, 2.0, width=width)),
        )
    )


@SETTINGS
@given(
    Z=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=_z_elements(),
    ),
    shift=st.floats(-BOUND, BOUND),
)
def test_softmax_rows_sum_to_one_and_ignore_a_constant_per_row(Z, shift):
    A, _ = run(ref.Softmax(), Z, np.zeros_like(Z))
    assert np.all(np.isfinite(A)) and np.all(A >= 0)
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # A different constant for each row.
    shifts = shift * np.linspace(-1.0, 1.0, Z.shape[0])[:, None]
    A_shifted, _ = run(ref.Softmax(), Z + shifts, np.zeros_like(Z))
    assert excess(A_shifted, A) <= 1.0


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_backward_is_the_vector_jacobian_product_of_forward(config):
    name, kwargs = config

    @SETTINGS
    @given(inputs(scalar=name != "Softmax"))
    def check(Z_dLdA):
        Z, dLdA = Z_dLdA
        assert_matches_math(name, kwargs, Z, dLdA)

    check()


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_finite_and_warning_free_up_to_1000(config):
    name, kwargs = config

    @SETTINGS
    @given(inputs(scalar=name != "Softmax", max_side=5))
    def check(Z_dLdA):
        Z, dLdA = Z_dLdA
        obj = getattr(ref, name)(**kwargs)
        A, dLdZ = run(obj, Z, dLdA)  # raises on any numpy warning
        assert np.all(np.isfinite(A)) and np.all(np.isfinite(dLdZ))
        assert np.shape(A) == Z.shape and np.shape(dLdZ) == Z.shape
        if name == "Swish":
            assert np.isfinite(obj.dLdbeta)

    check()


def float32_excesses(name, kwargs, Z32, dLdA32):
    """Reference on float32 inputs against the reference on the same numbers in float64.

    float32 accuracy means rtol 1e-5, atol 1e-6 element-wise. dLdbeta is a sum
    of N*C float32 products, so its rtol applies to the sum of the magnitudes
    of its terms, not to the (possibly cancelled) sum.
    """
    obj32 = getattr(ref, name)(**kwargs)
    A32, dLdZ32 = run(obj32, Z32, dLdA32)
    obj64 = getattr(ref, name)(**kwargs)
    Z64, dLdA64 = Z32.astype(np.float64), dLdA32.astype(np.float64)
    A64, dLdZ64 = run(obj64, Z64, dLdA64)
    assert np.all(np.isfinite(A32)) and np.all(np.isfinite(dLdZ32))
    result = {
        "forward": excess(A32, A64, rtol=1e-5, atol=1e-6),
        "backward": excess(dLdZ32, dLdZ64, rtol=1e-5, atol=1e-6),
    }
    if name == "Swish":
        s = obj64.s
        scale = np.sum(np.abs(dLdA64 * Z64**2 * s * (1.0 - s)))
        diff = abs(float(obj32.dLdbeta) - float(obj64.dLdbeta))
        result["dLdbeta"] = diff / (1e-6 + 1e-5 * scale)
    return result


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_float32_inputs_are_accurate_to_float32(config):
    """float32 in: A and dLdZ within float32 accuracy of the float64 results."""
    name, kwargs = config

    @SETTINGS
    @given(inputs(scalar=name != "Softmax", dtype=np.float32, max_side=5))
    def check(Z_dLdA):
        Z32, dLdA32 = Z_dLdA
        result = float32_excesses(name, kwargs, Z32, dLdA32)
        assert result["forward"] <= 1.0 and result["backward"] <= 1.0, (Z32, result)

    check()


# Where the reference's float32 dLdbeta is furthest off (found by a scan of
# float32 Z in [-40, 40] with dLdA = 1): (float32 Z, float32 result, float64 result).
SWISH_FLOAT32_TAIL = {
    1.0: (16.637, 0.0, 1.6473770740432353e-05),
    0.5: (33.269, 0.00013194397615734488, 6.604009528580305e-05),
    2.0: (8.321, 0.0, 4.100361508066833e-06),
}


@pytest.mark.parametrize("beta", sorted(SWISH_FLOAT32_TAIL))
def test_float32_swish_dLdbeta_is_accurate_to_float32(beta):
    tail_Z = SWISH_FLOAT32_TAIL[beta][0]

    @SETTINGS
    @given(inputs(scalar=True, dtype=np.float32, max_side=5))
    @example((np.array([tail_Z], dtype=np.float32), np.array([1.0], dtype=np.float32)))
    def check(Z_dLdA):
        Z32, dLdA32 = Z_dLdA
        result = float32_excesses("Swish", {"beta": beta}, Z32, dLdA32)
        assert result["dLdbeta"] <= 1.0, (Z32, dLdA32, result)

    check()


# --------------------------------------------------------------------------- #
# The values the course publishes
# --------------------------------------------------------------------------- #


def test_published_gelu_values():
    Z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    dLdA = np.array([1.0, 1.0, 0.0, 1.0, -1.0])
    A, dLdZ = run(ref.GELU(), Z, dLdA)
    # Published to 4 decimals: within half a unit of the last place.
    np.testing.assert_allclose(A, [-0.0455, -0.1543, 0.0, 0.3457, 1.9545], rtol=0, atol=5e-5)
    np.testing.assert_allclose(dLdZ, [-0.0852, 0.1325, 0.0, 0.8675, -1.0852], rtol=0, atol=5e-5)


def test_published_softmax_values():
    A, _ = run(ref.Softmax(), np.array([[1000.0, 1001.0, 1002.0]]), np.zeros((1, 3)))
    np.testing.assert_allclose(A, [[0.09003, 0.24473, 0.66524]], rtol=0, atol=5e-6)


def test_published_swish_values():
    Z = np.array([[-4.0, -3.0], [-2.0, -1.0], [0.0, 1.0], [2.0, 3.0]])
    A, _ = run(ref.Swish(beta=1.0), Z, np.ones_like(Z))
    assert A.shape == (4, 2)
    # The course printed these from a float32 computation: -3 * sigmoid(-3) is
    # -0.1422776195..., and float32 rounding gives the published -0.14227763.
    # So the published digits hold to one float32 unit (2**-23 relative), and
    # the exact values to 1e-10.
    np.testing.assert_allclose(A[0], [-0.07194484, -0.14227763], rtol=2.0**-23, atol=0)
    np.testing.assert_allclose(A[0], [-0.0719448398483662, -0.1422776195327003], rtol=1e-10)


# --------------------------------------------------------------------------- #
# Source: vectorized, small imports, no np.tanh in Tanh
# --------------------------------------------------------------------------- #

TREE = ast.parse(REFERENCE_SOURCE)
LOOPS = (
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)
HIDDEN_LOOPS = {
    "vectorize",
    "frompyfunc",
    "apply_along_axis",
    "apply_over_axes",
    "nditer",
    "ndindex",
}


def _classes():
    return {node.name: node for node in TREE.body if isinstance(node, ast.ClassDef)}


def _methods(class_node):
    return {n.name: n for n in class_node.body if isinstance(n, ast.FunctionDef)}


def test_the_source_defines_every_class_of_the_table():
    assert sorted(_classes()) == CLASS_NAMES
    assert len(CLASS_NAMES) == len(assignment.ACTIVATIONS)
    for name, node in _classes().items():
        assert {"forward", "backward"} <= set(_methods(node)), name


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_no_python_loop_in_forward_or_backward(name):
    for method in ("forward", "backward"):
        node = _methods(_classes()[name])[method]
        for sub in ast.walk(node):
            assert not isinstance(sub, LOOPS), f"{name}.{method}: a loop at line {sub.lineno}"
            ident = sub.attr if isinstance(sub, ast.Attribute) else getattr(sub, "id", None)
            assert ident not in HIDDEN_LOOPS, f"{name}.{method}: {ident} at line {sub.lineno}"


def test_no_python_loop_in_module_level_helpers():
    for node in TREE.body:
        if isinstance(node, ast.FunctionDef):
            for sub in ast.walk(node):
                assert not isinstance(sub, LOOPS), f"{node.name}: a loop at line {sub.lineno}"


def _count_calls(fn):
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_work_does_not_grow_with_the_batch(config):
    """The number of Python-level calls is the same for a batch of 2 and of 64."""
    name, kwargs = config
    counts = []
    for N in (2, 64):
        rng = np.random.default_rng(N)
        Z = rng.normal(scale=3.0, size=(N, 3))
        dLdA = rng.normal(size=(N, 3))
        obj = getattr(ref, name)(**kwargs)
        run(obj, Z, dLdA)  # warm up (first-call imports, caches)
        obj = getattr(ref, name)(**kwargs)

        def both(obj=obj, Z=Z, dLdA=dLdA):
            obj.forward(Z)
            obj.backward(dLdA)

        counts.append(_count_calls(both))
    assert counts[0] == counts[1], f"{counts[0]} calls for N=2 but {counts[1]} for N=64"


def test_the_call_count_would_see_a_loop():
    class LoopingSoftmax(ref.Softmax):
        def backward(self, dLdA):
            dLdZ = np.zeros_like(dLdA)
            for i in range(dLdA.shape[0]):
                J = np.diag(self.A[i]) - np.outer(self.A[i], self.A[i])
                dLdZ[i, :] = dLdA[i, :] @ J
            return dLdZ

    counts = []
    for N in (2, 64):
        obj = LoopingSoftmax()
        Z = np.ones((N, 3))
        counts.append(_count_calls(lambda obj=obj, Z=Z: obj.backward(obj.forward(Z))))
    assert counts[0] < counts[1]


def test_imports_only_numpy_math_and_scipy():
    imported = set()
    for node in ast.walk(TREE):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import at line {node.lineno}"
            imported.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            pytest.fail(f"__import__ at line {node.lineno}")
    assert imported, "the reference imports nothing?"
    assert {m.split(".")[0] for m in imported} <= {"numpy", "math", "scipy"}, imported


def _names_used(node):
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            yield sub.attr
        elif isinstance(sub, ast.Name):
            yield sub.id


def test_tanh_does_not_use_a_ready_made_tanh():
    names = set(_names_used(_classes()["Tanh"]))
    # Helpers the class calls count too.
    helpers = {n.name: n for n in TREE.body if isinstance(n, ast.FunctionDef)}
    for helper in names & set(helpers):
        names |= set(_names_used(helpers[helper]))
    assert not {n for n in names if "tanh" in n.lower()}, names


# --------------------------------------------------------------------------- #
# The forward / backward contract
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_forward_stores_A_and_leaves_Z_and_dLdA_alone(config):
    name, kwargs = config
    rng = np.random.default_rng(3)
    Z = rng.normal(scale=3.0, size=(4, 5))
    dLdA = rng.normal(size=(4, 5))
    Z_before, dLdA_before = Z.copy(), dLdA.copy()
    # Read-only inputs: any in-place write raises.
    Z.flags.writeable = False
    dLdA.flags.writeable = False
    obj = getattr(ref, name)(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        A = obj.forward(Z)
        assert hasattr(obj, "A"), "forward must store self.A"
        assert obj.A is A or np.array_equal(obj.A, A)
        A_after_forward = np.array(A, copy=True)
        dLdZ = obj.backward(dLdA)
    assert np.array_equal(Z, Z_before)
    assert np.array_equal(dLdA, dLdA_before)
    assert np.array_equal(obj.A, A_after_forward), "backward changed self.A"
    assert np.shape(A) == Z.shape and np.shape(dLdZ) == Z.shape
    assert isinstance(A, np.ndarray) and isinstance(dLdZ, np.ndarray)


def test_swish_dLdbeta_is_one_number():
    rng = np.random.default_rng(4)
    obj = ref.Swish(beta=0.5)
    run(obj, rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2)))
    assert np.ndim(obj.dLdbeta) == 0
    float(obj.dLdbeta)


def test_signatures_take_the_course_names():
    for name in CLASS_NAMES:
        cls = getattr(ref, name)
        assert list(inspect.signature(cls.forward).parameters) == ["self", "Z"]
        assert list(inspect.signature(cls.backward).parameters) == ["self", "dLdA"]
