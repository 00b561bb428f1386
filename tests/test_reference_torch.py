"""The reference against PyTorch: forward values and autograd gradients.

Semantics follow ``torch.nn.functional`` in PyTorch 2.13, including the
derivative at a kink (DESIGN.md). Everything runs in float64 and must agree
element-wise to

    |ours - torch| <= 1e-12 + 1e-10 * |torch|

on random inputs of several shapes, on the exact kink points and on
magnitudes up to |Z| = 1000, with no numpy warning raised by the reference.
"""

import warnings

import numpy as np
import pytest
from helpers import CONFIGS, SCALAR_CONFIGS, kinks

from autograder import files
from autograder.course import assignment, reference

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0")
F = torch.nn.functional

RTOL = 1e-10
ATOL = 1e-12

ref = reference.load_module(files.REFERENCE_PATH)


def config_id(config):
    name, kwargs = config
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}({args})"


def test_every_reference_class_is_covered():
    classes = {
        name
        for name, value in vars(ref).items()
        if isinstance(value, type) and value.__module__ == ref.__name__
    }
    assert classes == {name for name, _ in CONFIGS}
    assert classes == set(assignment.BY_NAME)


# --------------------------------------------------------------------------- #
# PyTorch's side
# --------------------------------------------------------------------------- #

TORCH_FUNCTIONS = {
    "Identity": lambda Z: torch.nn.Identity()(Z),
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "ReLU": F.relu,
    "LeakyReLU": lambda Z, alpha=0.01: F.leaky_relu(Z, negative_slope=alpha),
    "ELU": lambda Z, alpha=1.0: F.elu(Z, alpha=alpha),
    "CELU": lambda Z, alpha=1.0: F.celu(Z, alpha=alpha),
    "GELU": F.gelu,  # approximate="none": the exact erf form
    "Softplus": lambda Z, beta=1.0, threshold=20.0: F.softplus(Z, beta=beta, threshold=threshold),
    "Mish": F.mish,
    "Hardswish": F.hardswish,
    "ReLU6": F.relu6,
    "Softmax": lambda Z: F.softmax(Z, dim=1),
}


def torch_run(name, kwargs, Z, dLdA):
    """A, dLdZ (and dLdbeta for Swish) from PyTorch's autograd, in float64."""
    Zt = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    beta = None
    if name == "Swish":
        beta = torch.tensor(kwargs.get("beta", 1.0), dtype=torch.float64, requires_grad=True)
        At = Zt * torch.sigmoid(beta * Zt)
    else:
        At = TORCH_FUNCTIONS[name](Zt, **kwargs)
    At.backward(torch.tensor(dLdA, dtype=torch.float64))
    dLdbeta = None if beta is None else beta.grad.item()
    return At.detach().numpy().copy(), Zt.grad.numpy().copy(), dLdbeta


# --------------------------------------------------------------------------- #
# The reference's side
# --------------------------------------------------------------------------- #


def ours_run(name, kwargs, Z, dLdA):
    """A, dLdZ (and dLdbeta) from the reference, failing on any numpy warning.

    Every warning is an error, and overflow, division by zero and invalid
    operations raise even where numpy would stay silent. Underflow is left
    alone on purpose: exp(-1000) == 0.0 is the right answer, not a mistake.
    """
    obj = getattr(ref, name)(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            A = np.asarray(obj.forward(Z.copy()), dtype=np.float64)
            dLdZ = np.asarray(obj.backward(dLdA.copy()), dtype=np.float64)
    dLdbeta = getattr(obj, "dLdbeta", None)
    return A, dLdZ, dLdbeta


def assert_agrees(ours, theirs, Z, what):
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch's {theirs.shape}"
    assert np.all(np.isfinite(ours)), f"{what}: non-finite values {ours[~np.isfinite(ours)]}"
    bound = ATOL + RTOL * np.abs(theirs)
    diff = np.abs(ours - theirs)
    bad = ~(diff <= bound)
    if bad.any():
        Zb = np.broadcast_to(Z, ours.shape) if np.ndim(Z) else np.full(ours.shape, np.nan)
        worst = np.argsort(-(diff / bound).ravel())[: min(5, int(bad.sum()))]
        rows = "\n".join(
            f"  Z={Zb.ravel()[k]!r}: ours={ours.ravel()[k]!r} torch={theirs.ravel()[k]!r}"
            for k in worst
        )
        pytest.fail(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ "
            f"(max abs diff {diff.max():.3g}; torch {torch.__version__}):\n{rows}"
        )


def check_against_torch(config, Z, dLdA):
    name, kwargs = config
    Z = np.asarray(Z, dtype=np.float64)
    dLdA = np.asarray(dLdA, dtype=np.float64)
    A, dLdZ, dLdbeta = ours_run(name, kwargs, Z, dLdA)
    At, dLdZt, dLdbetat = torch_run(name, kwargs, Z, dLdA)
    label = config_id(config)
    assert_agrees(A, At, Z, f"{label} forward")
    assert_agrees(dLdZ, dLdZt, Z, f"{label} backward")
    if name == "Swish":
        assert dLdbeta is not None, "Swish.backward must set self.dLdbeta"
        assert np.ndim(dLdbeta) == 0, f"dLdbeta must be one number, got shape {np.shape(dLdbeta)}"
        assert_agrees(dLdbeta, dLdbetat, np.nan, f"{label} dLdbeta")


# --------------------------------------------------------------------------- #
# Random inputs of several shapes
# --------------------------------------------------------------------------- #

SCALAR_SHAPES = [(4, 5), (7,), (2, 3, 4), (1, 1)]
SOFTMAX_SHAPES = [(4, 5), (1, 7), (6, 1), (3, 2)]


@pytest.mark.parametrize("scale", [1.0, 3.0, 12.0])
@pytest.mark.parametrize("shape", SCALAR_SHAPES, ids=str)
@pytest.mark.parametrize("config", SCALAR_CONFIGS, ids=config_id)
def test_random_inputs_scalar(config, shape, scale):
    rng = np.random.default_rng([len(shape), *shape, int(scale)])
    Z = rng.normal(scale=scale, size=shape)
    dLdA = rng.normal(size=shape)
    check_against_torch(config, Z, dLdA)


@pytest.mark.parametrize("scale", [1.0, 3.0, 12.0])
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
def test_random_inputs_softmax(shape, scale):
    rng = np.random.default_rng([*shape, int(scale)])
    Z = rng.normal(scale=scale, size=shape)
    dLdA = rng.normal(size=shape)
    check_against_torch(("Softmax", {}), Z, dLdA)


def test_swish_dLdbeta_is_summed_over_the_whole_batch():
    # A 3-D batch: dLdbeta must be the sum over every element, not a per-row
    # or per-column sum.
    rng = np.random.default_rng(7)
    Z = rng.normal(scale=3.0, size=(3, 4, 5))
    dLdA = rng.normal(size=Z.shape)
    for beta in (1.0, 0.5, 2.0):
        check_against_torch(("Swish", {"beta": beta}), Z, dLdA)


# --------------------------------------------------------------------------- #
# Exact kink points
# --------------------------------------------------------------------------- #


KINK_CONFIGS = [c for c in SCALAR_CONFIGS if kinks(*c)]


def around(k):
    """The kink itself and its float64 neighbours (and -0.0 for a kink at 0)."""
    points = [k, np.nextafter(k, -np.inf), np.nextafter(k, np.inf), k - 1e-9, k + 1e-9]
    if k == 0.0:
        points.append(-0.0)
    return points


@pytest.mark.parametrize("config", KINK_CONFIGS, ids=config_id)
def test_kink_points(config):
    Z = np.array([p for k in kinks(*config) for p in around(k)])
    # dLdA = 1 makes dLdZ the derivative itself; a second random dLdA checks
    # the product.
    check_against_torch(config, Z, np.ones_like(Z))
    check_against_torch(config, Z, np.random.default_rng(11).normal(size=Z.shape))


def test_torch_takes_the_kink_values_design_md_names():
    # The kink check is meaningful only if torch's values at the kinks are the
    # ones DESIGN.md promises (PyTorch 2.13): a library disagreeing here would
    # make the comparison above test something else.
    def grad(f, z):
        Zt = torch.tensor([z], dtype=torch.float64, requires_grad=True)
        f(Zt).backward(torch.ones(1, dtype=torch.float64))
        return Zt.grad.item()

    assert grad(F.relu, 0.0) == 0.0
    assert grad(lambda Z: F.leaky_relu(Z, 0.2), 0.0) == 0.2
    assert grad(lambda Z: F.elu(Z, 2.0), 0.0) == 2.0
    assert grad(lambda Z: F.celu(Z, 2.0), 0.0) == 1.0
    assert grad(F.relu6, 0.0) == 0.0
    assert grad(F.relu6, 6.0) == 0.0
    assert grad(F.hardswish, -3.0) == 0.0, f"torch {torch.__version__}: Hardswish'(-3)"
    assert grad(F.hardswish, 3.0) == 1.0, f"torch {torch.__version__}: Hardswish'(+3)"


# --------------------------------------------------------------------------- #
# Large magnitudes, where a naive formula overflows
# --------------------------------------------------------------------------- #

LARGE = [1000.0, 745.0, 710.0, 709.8, 709.0, 100.0, 30.0, 20.0, 1e-8, 1e-300]
LARGE_Z = np.array([s * v for v in LARGE for s in (-1.0, 1.0)]).reshape(4, 5)


@pytest.mark.parametrize("config", SCALAR_CONFIGS, ids=config_id)
def test_large_magnitudes_scalar(config):
    rng = np.random.default_rng(13)
    check_against_torch(config, LARGE_Z, rng.normal(size=LARGE_Z.shape))
    check_against_torch(config, LARGE_Z, np.ones_like(LARGE_Z))


SOFTMAX_LARGE_Z = np.array(
    [
        [1000.0, 1001.0, 1002.0],
        [-1000.0, 0.0, 1000.0],
        [-745.0, -710.0, -709.8],
        [709.8, 710.0, 745.0],
        [-1000.0, -1000.0, -1000.0],
        [1000.0, 1000.0, -1000.0],
    ]
)


def test_large_magnitudes_softmax():
    rng = np.random.default_rng(17)
    check_against_torch(("Softmax", {}), SOFTMAX_LARGE_Z, rng.normal(size=SOFTMAX_LARGE_Z.shape))
    check_against_torch(("Softmax", {}), SOFTMAX_LARGE_Z, np.ones_like(SOFTMAX_LARGE_Z))


def test_the_agreement_criterion_catches_a_wrong_gelu():
    # The criterion is tight enough that GELU's tanh approximation, a plausible
    # student shortcut, disagrees with torch's exact GELU.
    Z = np.linspace(-4.0, 4.0, 17)
    approx = 0.5 * Z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (Z + 0.044715 * Z**3)))
    At, _, _ = torch_run("GELU", {}, Z, np.ones_like(Z))
    with pytest.raises(pytest.fail.Exception):
        assert_agrees(approx, At, Z, "tanh-approximate GELU")
