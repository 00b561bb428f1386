"""Hidden cases: graded for the record, never shown to students.

This module is the instructor-only part of the assignment table
(``assignment.py``): the student bundle leaves it out, so a student's copy of
the autograder grades public cases only. Feedback on hidden cases shows
pass/fail and points, never the inputs or the expected values.

A note names the kind of input (``large |Z|``): a course leaves such cases out
by kind (``leave_out`` in a course file), without naming a hidden case.
"""

from __future__ import annotations

from autograder.course.assignment import CaseSpec, Random, Values

_BIG = ((-1000.0, -745.0, -50.0, -1e-8), (1e-8, 50.0, 745.0, 1000.0))

HIDDEN: dict[str, tuple[CaseSpec, ...]] = {
    "Identity": (Random((6, 3), seed=150), Random((5,), seed=151, dtype="float32")),
    "Sigmoid": (
        Random((8, 6), seed=250, scale=6.0),
        Random((3, 2, 5), seed=251, dtype="float32"),
        Values(_BIG, seed=252, note="large |Z|"),
    ),
    "Tanh": (
        Random((8, 6), seed=350, scale=4.0),
        Random((3, 2, 5), seed=351, dtype="float32"),
        Values(_BIG, seed=352, note="large |Z|"),
    ),
    "ReLU": (
        Random((8, 6), seed=450),
        Random((3, 2, 5), seed=451, dtype="float32"),
        Values(((0.0, -0.0, 1e-6), (-1e-6, 7.0, -7.0)), seed=452),
    ),
    "LeakyReLU": (
        Random((8, 6), seed=550),
        Random((3, 2, 5), seed=551, kwargs={"alpha": 0.3}),
        Values((-1.0, 0.0, 1.0), seed=552, kwargs={"alpha": 0.2}),
    ),
    "ELU": (
        Random((8, 6), seed=650, kwargs={"alpha": 1.7}),
        Random((3, 2, 5), seed=651, dtype="float32"),
        Values(_BIG, seed=652, kwargs={"alpha": 0.5}, note="large |Z|"),
    ),
    "CELU": (
        Random((8, 6), seed=750, kwargs={"alpha": 0.5}),
        Random((3, 2, 5), seed=751, dtype="float32", kwargs={"alpha": 3.0}),
        Values(_BIG, seed=752, kwargs={"alpha": 2.0}, note="large |Z|"),
    ),
    "GELU": (
        Random((8, 6), seed=850, scale=4.0),
        Random((3, 2, 5), seed=851, dtype="float32"),
        Values(_BIG, seed=852, note="large |Z|"),
    ),
    "Swish": (
        Random((8, 6), seed=950, kwargs={"beta": 2.0}),
        Random((3, 2, 5), seed=951, dtype="float32"),
        # Large |Z| (where e^(-beta Z) overflows) with a few moderate values, so that
        # dLdbeta is far from 0: on _BIG alone it is 4e-8, which any tiny answer matches.
        Values(
            ((-1000.0, -745.0, -50.0, -2.0), (1.5, 50.0, 745.0, 1000.0)),
            seed=952,
            kwargs={"beta": 0.5},
            note="large |Z|",
        ),
    ),
    "Softplus": (
        Random((8, 6), seed=1050, scale=8.0),
        Random((3, 2, 5), seed=1051, dtype="float32", kwargs={"beta": 0.5}),
        Values(_BIG, seed=1052, kwargs={"beta": 3.0, "threshold": 10.0}, note="large |Z|"),
    ),
    "Mish": (
        Random((8, 6), seed=1150, scale=4.0),
        Random((3, 2, 5), seed=1151, dtype="float32"),
        Values(_BIG, seed=1152, note="large |Z|"),
    ),
    "Hardswish": (
        Random((8, 6), seed=1250, scale=4.0),
        Random((3, 2, 5), seed=1251, dtype="float32"),
        Values(((-3.0, 3.0, -2.999), (2.999, -3.001, 3.001)), seed=1252),
    ),
    "ReLU6": (
        Random((8, 6), seed=1350, scale=5.0),
        Random((3, 2, 5), seed=1351, dtype="float32"),
        Values(((6.0, 0.0, 5.999), (6.001, -0.001, 1e-6)), seed=1352),
    ),
    "Softmax": (
        Random((8, 10), seed=1450, scale=5.0),
        Random((5, 7), seed=1451, scale=400.0, note="large |Z|"),
        Random((6, 3), seed=1452, dtype="float32"),
        # The narrowest rows: two features. (One feature would make A all ones and
        # dLdZ all zeros, which a constant answer passes.)
        Random((4, 2), seed=1453),
    ),
}
