"""One place for the course model: the table, the hidden rows and the test oracles agree.

Adding an activation touches exactly the places the README lists (the reference
class, its table row, its hidden cases, the two independent oracles of the
reference's math); these tests fail loudly, naming what is missing, when one
of them is left out. Everything else (the presets, CONFIGS, counts, the
handout) is derived from the table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
from helpers import CONFIGS, kinks

from autograder.course import assignment, reference
from autograder.course import course_file as course
from autograder.course.hidden_cases import HIDDEN

TESTS = Path(__file__).resolve().parent


def _dict_keys(path: Path, name: str) -> set[str]:
    """The string keys of the module-level dict ``name`` in a test file (read, not imported:
    the PyTorch tests skip themselves at import where torch is absent)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            assert isinstance(node.value, ast.Dict)
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    raise AssertionError(f"{path.name} has no {name}")


def test_every_row_has_its_reference_hidden_cases_and_oracles():
    ref = reference.load_reference()
    math_oracle = _dict_keys(TESTS / "test_reference_math.py", "MATH")
    torch_oracle = _dict_keys(TESTS / "test_reference_torch.py", "TORCH_FUNCTIONS")
    problems = []
    for act in assignment.ACTIVATIONS:
        name = act.name
        where = f"{name} (assignment.py)"
        if not isinstance(getattr(ref, name, None), type):
            problems.append(f"{where}: no class {name} in the reference")
        if not act.public:
            problems.append(f"{where}: no public cases")
        if not HIDDEN.get(name):
            problems.append(f"{where}: no hidden cases in hidden_cases.py")
        if not act.formula or not act.derivative:
            problems.append(f"{where}: no formula or derivative (notebook, plots)")
        if not act.vector and name not in math_oracle:
            problems.append(f"{where}: no mpmath oracle (MATH in test_reference_math.py)")
        # Swish's beta is learnable, so its PyTorch oracle is written out in torch_run.
        if name != "Swish" and name not in torch_oracle:
            problems.append(f"{where}: no PyTorch oracle (TORCH_FUNCTIONS)")
    unknown = set(HIDDEN) - set(assignment.BY_NAME)
    problems += [f"hidden_cases.py: {n} is not a row of the table" for n in sorted(unknown)]
    assert not problems, "\n".join(problems)


def test_the_kinks_are_declared_where_the_reference_derivative_jumps():
    # The table's kinks, the independent list in helpers.kinks and the reference's own
    # derivative agree: a new row with a kink fails here until both declare it.
    ref = reference.load_reference()
    for name, kwargs in CONFIGS:
        act = assignment.BY_NAME[name]
        assert set(act.kink_points(kwargs)) == set(kinks(name, kwargs)), (name, kwargs)
        if act.vector:
            continue
        Z = np.linspace(-25.0, 25.0, 200_001)
        obj = getattr(ref, name)(**kwargs)
        obj.forward(Z.copy())
        dAdZ = np.asarray(obj.backward(np.ones_like(Z)), dtype=np.float64)
        jumps = Z[1:][np.abs(np.diff(dAdZ)) > 1e-3]
        declared = np.array(act.kink_points(kwargs) or [np.inf])
        far = [z for z in jumps if np.min(np.abs(declared - z)) > 1e-3]
        assert not far, f"{name}{kwargs}: the derivative jumps near Z = {far[:3]}, no kink declared"


def test_full_is_the_table_and_counts_come_from_it():
    full = course.load("full")
    assert full.names == tuple(assignment.BY_NAME)
    assert full.total == assignment.MAX_SCORE
    assert {n for n, _ in CONFIGS} == set(assignment.BY_NAME)
    # Every constructor argument a case uses is among the configurations checked.
    for act in assignment.ACTIVATIONS:
        for spec in (*act.public, *HIDDEN[act.name]):
            assert (act.name, spec.kwargs) in CONFIGS, (act.name, spec.kwargs)
