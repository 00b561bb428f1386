"""The assignment table: what is graded, on which inputs, for how many points.

Everything else reads this module: the case builder, the checks, the
report, the handout and notebook generators, the bundles. Adding an
activation means one reference class (with solution markers) and one
``Activation(...)`` entry below; its hidden cases go in ``hidden_cases.py``,
which is kept out of the student bundle.

Points total 100. Each activation's points are split over tests, one test
per (phase, visibility): ``forward`` and ``backward`` (and Swish's
``dLdbeta``), each public and hidden, plus rules such as "no np.tanh". A test
earns its points in proportion to the cases it passes, so one wrong kink
costs one case, not the whole class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Relative and absolute tolerance of every comparison, in float64:
# |got - expected| <= ATOL + RTOL * |expected|, element by element.
# Loose enough that correct code computing in float32 gets full credit,
# tight enough to catch approximations (GELU's tanh form) and wrong kinks.
RTOL = 1e-5
ATOL = 1e-6

PHASES = ("forward", "backward", "dLdbeta")
VISIBILITIES = ("public", "hidden")


@dataclass(frozen=True)
class Random:
    """Z drawn from a normal distribution with standard deviation ``scale``.

    ``dLdA`` is drawn from a standard normal with the same generator, so a
    case is fully determined by its seed.
    """

    shape: tuple[int, ...]
    seed: int
    scale: float = 3.0
    dtype: str = "float64"
    kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Values:
    """Z given explicitly (kink points, large magnitudes, published examples).

    ``dLdA`` is given too, or drawn from a standard normal seeded by ``seed``.
    """

    Z: tuple | list
    seed: int
    dLdA: tuple | list | None = None
    dtype: str = "float64"
    kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""


CaseSpec = Random | Values


@dataclass(frozen=True)
class Points:
    """Points of one phase, split between its public and hidden test."""

    public: float
    hidden: float


@dataclass(frozen=True)
class ForbiddenNames:
    """A rule: the class's code must not use these names (e.g. ``tanh``).

    Checked on the source text with ``ast`` (nothing is executed), following
    module-level aliases and helper functions the class calls, so a correct
    formula built from ``np.exp`` is never punished.
    """

    name: str
    names: tuple[str, ...]
    points: float
    message: str


@dataclass(frozen=True)
class Activation:
    """One row of the table: an activation class and how it is graded."""

    name: str
    points: dict[str, Points]
    public: tuple[CaseSpec, ...]
    vector: bool = False
    # Where the derivative jumps, for the finite-difference self-check: fixed
    # points, or a function of the constructor arguments (Softplus's threshold).
    kinks: tuple[float, ...] | Callable[..., tuple[float, ...]] = ()
    rules: tuple[ForbiddenNames, ...] = ()
    rtol: float = RTOL
    atol: float = ATOL
    # Formula and derivative in LaTeX, for the notebook and the feedback plots.
    formula: str = ""
    derivative: str = ""

    @property
    def max_score(self) -> float:
        """All points of this activation, public and hidden, rules included."""
        total = sum(p.public + p.hidden for p in self.points.values())
        return total + sum(r.points for r in self.rules)

    def kink_points(self, kwargs: dict[str, Any]) -> tuple[float, ...]:
        """The kinks of this activation built with constructor arguments ``kwargs``."""
        return self.kinks(**kwargs) if callable(self.kinks) else self.kinks

    def test_points(self, phase: str, visibility: str) -> float:
        """Points of the test (phase, visibility); 0 when it does not exist."""
        points = self.points.get(phase)
        return 0.0 if points is None else float(getattr(points, visibility))


def _fb(public: float, hidden: float, backward: tuple[float, float] | None = None):
    """Forward and backward points: (public, hidden) each."""
    bp, bh = backward if backward else (public, hidden)
    return {"forward": Points(public, hidden), "backward": Points(bp, bh)}


# Inputs shared by several activations.
_KINK0 = (-2.0, -1e-3, 0.0, 1e-3, 2.0)
_BIG = ((-1000.0, -200.0, -30.0, 0.5), (30.0, 200.0, 710.0, 1000.0))

ACTIVATIONS: tuple[Activation, ...] = (
    Activation(
        "Identity",
        points=_fb(1, 1),
        public=(Random((4, 5), seed=101), Random((3, 2, 4), seed=102)),
        formula=r"A = Z",
        derivative=r"\frac{\partial A}{\partial Z} = 1",
    ),
    Activation(
        "Sigmoid",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=201),
            Random((7,), seed=202),
            Random((2, 3, 4), seed=203),
            Values(_BIG, seed=204, note="large |Z|"),
            Random((4, 5), seed=205, dtype="float32"),
        ),
        formula=r"A = \sigma(Z) = \frac{1}{1 + e^{-Z}}",
        derivative=r"\frac{\partial A}{\partial Z} = A\,(1 - A)",
    ),
    Activation(
        "Tanh",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=301),
            Random((7,), seed=302),
            Random((2, 3, 4), seed=303),
            Values(_BIG, seed=304, note="large |Z|"),
            Values((-1e-9, -1e-4, 0.0, 1e-4, 1e-9), seed=306, note="Z near 0"),
            Random((4, 5), seed=305, dtype="float32"),
        ),
        rules=(
            ForbiddenNames(
                "no np.tanh",
                names=("tanh",),
                points=1,
                message="Tanh must be written from exponentials; np.tanh (or any other tanh) "
                "is not allowed in this class.",
            ),
        ),
        formula=r"A = \tanh Z = \frac{e^{Z} - e^{-Z}}{e^{Z} + e^{-Z}}",
        derivative=r"\frac{\partial A}{\partial Z} = 1 - A^2",
    ),
    Activation(
        "ReLU",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=401),
            Random((7,), seed=402),
            Random((2, 3, 4), seed=403),
            Values(_KINK0, seed=404, note="the kink Z = 0"),
            Random((4, 5), seed=405, dtype="float32"),
        ),
        kinks=(0.0,),
        formula=r"A = \max(0, Z)",
        derivative=r"\frac{\partial A}{\partial Z} = \begin{cases} 1 & Z > 0 \\ 0 & Z \le 0 \end{cases}",
    ),
    Activation(
        "LeakyReLU",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=501),
            Random((7,), seed=502),
            Random((2, 3, 4), seed=503),
            Values(_KINK0, seed=504, note="the kink Z = 0"),
            Random((4, 5), seed=505, kwargs={"alpha": 0.2}),
            Random((4, 5), seed=506, dtype="float32"),
        ),
        kinks=(0.0,),
        formula=r"A = \begin{cases} Z & Z > 0 \\ \alpha Z & Z \le 0 \end{cases}",
        derivative=r"\frac{\partial A}{\partial Z} = \begin{cases} 1 & Z > 0 \\ \alpha & Z \le 0 \end{cases}",
    ),
    Activation(
        "ELU",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=601),
            Random((7,), seed=602),
            Random((2, 3, 4), seed=603),
            Values(_KINK0, seed=604, kwargs={"alpha": 2.0}, note="the kink Z = 0"),
            Values(_BIG, seed=605, note="large |Z|"),
            Random((4, 5), seed=606, kwargs={"alpha": 0.5}),
            Random((4, 5), seed=607, dtype="float32"),
        ),
        kinks=(0.0,),
        formula=r"A = \begin{cases} Z & Z > 0 \\ \alpha (e^{Z} - 1) & Z \le 0 \end{cases}",
        derivative=r"\frac{\partial A}{\partial Z} = \begin{cases} 1 & Z > 0 \\ \alpha e^{Z} & Z \le 0 \end{cases}",
    ),
    Activation(
        "CELU",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=701),
            Random((7,), seed=702),
            Random((2, 3, 4), seed=703),
            Values(_BIG, seed=704, note="large |Z|"),
            Random((4, 5), seed=705, kwargs={"alpha": 2.0}),
            Values(_KINK0, seed=706, kwargs={"alpha": 2.0}, note="the kink Z = 0"),
            Random((4, 5), seed=707, dtype="float32"),
        ),
        kinks=(0.0,),
        formula=r"A = \max(0, Z) + \min\!\left(0, \alpha (e^{Z/\alpha} - 1)\right)",
        derivative=r"\frac{\partial A}{\partial Z} = \begin{cases} 1 & Z > 0 \\ e^{Z/\alpha} & Z \le 0 \end{cases}",
    ),
    Activation(
        "GELU",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=801),
            Random((7,), seed=802),
            Random((2, 3, 4), seed=803),
            Values(
                (-2.0, -0.5, 0.0, 0.5, 2.0),
                seed=804,
                dLdA=(1.0, 1.0, 0.0, 1.0, -1.0),
                note="the course's worked example",
            ),
            Random((4, 5), seed=805, dtype="float32"),
        ),
        formula=r"A = Z\,\Phi(Z) = \frac{Z}{2}\left(1 + \operatorname{erf}\frac{Z}{\sqrt 2}\right)",
        derivative=r"\frac{\partial A}{\partial Z} = \Phi(Z) + Z\,\phi(Z), \quad "
        r"\phi(Z) = \frac{e^{-Z^2/2}}{\sqrt{2\pi}}",
    ),
    Activation(
        "Swish",
        points={
            "forward": Points(2, 1.5),
            "backward": Points(1.5, 1),
            "dLdbeta": Points(1, 1),
        },
        public=(
            Random((4, 5), seed=901),
            Random((7,), seed=902),
            Random((2, 3, 4), seed=903),
            Values(
                ((-4.0, -3.0), (-2.0, -1.0), (0.0, 1.0), (2.0, 3.0)),
                seed=904,
                note="the course's worked example",
            ),
            Values(_BIG, seed=905, note="large |Z|"),
            Random((4, 5), seed=906, kwargs={"beta": 0.5}),
            Random((4, 5), seed=907, dtype="float32"),
        ),
        formula=r"A = Z\,\sigma(\beta Z)",
        derivative=r"\frac{\partial A}{\partial Z} = s + \beta Z s (1 - s), \quad "
        r"\frac{\partial L}{\partial \beta} = \sum \frac{\partial L}{\partial A} Z^2 s (1 - s), "
        r"\quad s = \sigma(\beta Z)",
    ),
    Activation(
        "Softplus",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=1001),
            Random((7,), seed=1002),
            Random((2, 3, 4), seed=1003),
            Values(_BIG, seed=1004, note="large |Z|"),
            Random((4, 5), seed=1005, kwargs={"beta": 2.0}),
            Values(
                (-30.0, 9.5, 10.0, 10.5, 30.0),
                seed=1006,
                kwargs={"beta": 2.0},
                note="around the threshold beta * Z = 20",
            ),
            Random((4, 5), seed=1007, dtype="float32"),
        ),
        kinks=lambda beta=1.0, threshold=20.0: (threshold / beta,),
        formula=r"A = \frac{1}{\beta}\log\left(1 + e^{\beta Z}\right)"
        r"\quad (A = Z \text{ where } \beta Z > \text{threshold})",
        derivative=r"\frac{\partial A}{\partial Z} = \sigma(\beta Z)"
        r"\quad (1 \text{ where } \beta Z > \text{threshold})",
    ),
    Activation(
        "Mish",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=1101),
            Random((7,), seed=1102),
            Random((2, 3, 4), seed=1103),
            Values(_BIG, seed=1104, note="large |Z|"),
            Random((4, 5), seed=1105, dtype="float32"),
        ),
        formula=r"A = Z \tanh(\operatorname{softplus}(Z)), \quad \operatorname{softplus}(Z) = \log(1 + e^{Z})",
        derivative=r"\frac{\partial A}{\partial Z} = t + Z\,\sigma(Z)\,(1 - t^2), \quad t = \tanh(\operatorname{softplus}(Z))",
    ),
    Activation(
        "Hardswish",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=1201),
            Random((7,), seed=1202),
            Random((2, 3, 4), seed=1203),
            Values(
                (-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0), seed=1204, note="the kinks Z = -3 and Z = 3"
            ),
            Random((4, 5), seed=1205, dtype="float32"),
        ),
        kinks=(-3.0, 3.0),
        formula=r"A = Z\,\frac{\operatorname{relu6}(Z + 3)}{6}",
        derivative=r"\frac{\partial A}{\partial Z} = \begin{cases} 0 & Z \le -3 \\ \frac{2Z + 3}{6} & -3 < Z < 3 \\ 1 & Z \ge 3 \end{cases}",
    ),
    Activation(
        "ReLU6",
        points=_fb(2, 1.5),
        public=(
            Random((4, 5), seed=1301),
            Random((7,), seed=1302),
            Random((2, 3, 4), seed=1303),
            Values((-1.0, 0.0, 3.0, 6.0, 7.0), seed=1304, note="the kinks Z = 0 and Z = 6"),
            Random((4, 5), seed=1305, dtype="float32"),
        ),
        kinks=(0.0, 6.0),
        formula=r"A = \min(\max(0, Z), 6)",
        derivative=r"\frac{\partial A}{\partial Z} = \begin{cases} 1 & 0 < Z < 6 \\ 0 & \text{otherwise} \end{cases}",
    ),
    Activation(
        "Softmax",
        points=_fb(2, 1.5, backward=(3.5, 3)),
        vector=True,
        public=(
            Random((4, 5), seed=1401),
            Random((1, 6), seed=1402),
            Values(
                ((1000.0, 1001.0, 1002.0), (-1000.0, -999.0, -1000.0), (0.0, 0.0, 0.0)),
                seed=1403,
                note="large |Z|",
            ),
            Random((3, 4), seed=1404, dtype="float32"),
        ),
        formula=r"A_{ij} = \frac{e^{Z_{ij}}}{\sum_k e^{Z_{ik}}}",
        derivative=r"\frac{\partial L}{\partial Z_i} = \frac{\partial L}{\partial A_i} J_i, \quad "
        r"J_{mn} = A_m(\delta_{mn} - A_n)",
    ),
)

BY_NAME: dict[str, Activation] = {a.name: a for a in ACTIVATIONS}

MAX_SCORE = sum(a.max_score for a in ACTIVATIONS)
