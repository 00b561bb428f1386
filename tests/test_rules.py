"""The "Tanh without np.tanh" rule, judged on the syntax tree."""

from __future__ import annotations

import pytest

from autograder.rules import violations

GOOD = """
import numpy as np

class Tanh:
    '''Tanh: tanh(Z) written from exponentials, not np.tanh.'''
    def forward(self, Z):
        # np.tanh is not allowed here
        E = np.exp(-2 * np.abs(Z))
        self.A = np.sign(Z) * (1 - E) / (1 + E)
        return self.A

class Mish:
    def forward(self, Z):
        return Z * np.tanh(np.logaddexp(0, Z))
"""


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nclass Tanh:\n    def forward(self, Z):\n        return np.tanh(Z)\n",
        "import math\nclass Tanh:\n    def forward(self, Z):\n        return [math.tanh(z) for z in Z]\n",
        "from numpy import tanh as th\nclass Tanh:\n    def forward(self, Z):\n        return th(Z)\n",
        "import numpy as np\nT = np.tanh\nclass Tanh:\n    def forward(self, Z):\n        return T(Z)\n",
        "import numpy as np\nf = lambda z: np.tanh(z)\nclass Tanh:\n    def forward(self, Z):\n        return f(Z)\n",
        "import numpy as np\ndef helper(z):\n    return np.tanh(z)\nclass Tanh:\n    def forward(self, Z):\n        return helper(Z)\n",
        "import numpy as np\nclass Tanh:\n    def forward(self, Z):\n        return getattr(np, 'tanh')(Z)\n",
    ],
    ids=["np", "math", "from-import-alias", "module-alias", "lambda-alias", "helper", "getattr"],
)
def test_forbidden_uses_are_found(source):
    found = violations(source, "Tanh", ("tanh",))
    assert found and found[0].startswith("line ")


def test_exp_formula_comments_docstrings_and_other_classes_are_not_punished():
    assert violations(GOOD, "Tanh", ("tanh",)) == []


def test_missing_class_is_not_judged():
    assert violations("x = 1\n", "Tanh", ("tanh",)) is None
