"""The "Tanh without np.tanh" rule, judged on the syntax tree.

A ``tanh`` counts only where it comes from a library; the student's own code
is followed wherever the class reaches it. Each accusation has an honest twin
that must not be accused.
"""

from __future__ import annotations

import textwrap

import pytest
from conftest import FULL_MARKS, by_name
from helpers import REFERENCE_SOURCE, replace_method, write_layout

from autograder import files
from autograder.judge.rules import violations
from autograder.report import render
from autograder.report.record import FAILED, NOT_RUN, PASSED, RULE

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


def _src(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


FORBIDDEN = {
    "np": "import numpy as np\nclass Tanh:\n    def forward(self, Z):\n        return np.tanh(Z)\n",
    "numpy": "import numpy\nclass Tanh:\n    def forward(self, Z):\n        return numpy.tanh(Z)\n",
    "math": "import math\nclass Tanh:\n    def forward(self, Z):\n        return [math.tanh(z) for z in Z]\n",
    "from-import-alias": "from numpy import tanh as th\nclass Tanh:\n    def forward(self, Z):\n        return th(Z)\n",
    "star-import": "from numpy import *\nclass Tanh:\n    def forward(self, Z):\n        return tanh(Z)\n",
    "module-alias": "import numpy as np\nT = np.tanh\nclass Tanh:\n    def forward(self, Z):\n        return T(Z)\n",
    "module-object-alias": "import numpy as np\nN = np\nclass Tanh:\n    def forward(self, Z):\n        return N.tanh(Z)\n",
    "method-local-module-alias": "import numpy as np\nclass Tanh:\n    def forward(self, Z):\n        N = np\n        return N.tanh(Z)\n",
    "lambda-alias": "import numpy as np\nf = lambda z: np.tanh(z)\nclass Tanh:\n    def forward(self, Z):\n        return f(Z)\n",
    "helper": "import numpy as np\ndef helper(z):\n    return np.tanh(z)\nclass Tanh:\n    def forward(self, Z):\n        return helper(Z)\n",
    "helper-of-helper": _src(
        """
        import numpy as np
        def inner(z):
            return np.tanh(z)
        def outer(z):
            return inner(z)
        class Tanh:
            def forward(self, Z):
                return outer(Z)
        """
    ),
    "own-tanh-wrapping-np": _src(
        """
        import numpy as np
        def tanh(z):
            return np.tanh(z)
        class Tanh:
            def forward(self, Z):
                tanh_of_Z = tanh(Z)
                return tanh_of_Z
        """
    ),
    "getattr": "import numpy as np\nclass Tanh:\n    def forward(self, Z):\n        return getattr(np, 'tanh')(Z)\n",
    "dunder-dict": "import numpy as np\nclass Tanh:\n    def forward(self, Z):\n        return np.__dict__['tanh'](Z)\n",
    "torch-functional": "import torch.nn.functional as F\nclass Tanh:\n    def forward(self, Z):\n        return F.tanh(Z)\n",
    "scipy": "import scipy\nclass Tanh:\n    def forward(self, Z):\n        return scipy.special.tanh(Z)\n",
    "import-in-method": "class Tanh:\n    def forward(self, Z):\n        from math import tanh\n        return [tanh(z) for z in Z]\n",
    "dunder-import": "class Tanh:\n    def forward(self, Z):\n        return __import__('numpy').tanh(Z)\n",
    "vectorize": "import math, numpy as np\nclass Tanh:\n    def forward(self, Z):\n        return np.vectorize(math.tanh)(Z)\n",
    "base-class": _src(
        """
        import numpy as np
        class Base:
            def forward(self, Z):
                return np.tanh(Z)
        class Tanh(Base):
            pass
        """
    ),
    "other-class-used": _src(
        """
        import numpy as np
        class Helper:
            def run(self, Z):
                return np.tanh(Z)
        class Tanh:
            def forward(self, Z):
                return Helper().run(Z)
        """
    ),
    "subclass-of-same-name": _src(
        """
        import numpy as np
        class Tanh:
            def forward(self, Z):
                return np.tanh(Z)
        class Tanh(Tanh):
            def backward(self, dLdA):
                return dLdA * (1 - self.A**2)
        """
    ),
    "nested-function": _src(
        """
        import numpy as np
        class Tanh:
            def forward(self, Z):
                def t(x):
                    return np.tanh(x)
                return t(Z)
        """
    ),
    "eval": "import numpy as np\nclass Tanh:\n    def forward(self, Z):\n        return eval('np.tanh(Z)')\n",
    "patched-from-outside": "import numpy as np\nclass Tanh:\n    pass\nTanh.forward = lambda self, Z: np.tanh(Z)\n",
    "class-attribute": "import numpy as np\nclass Tanh:\n    f = staticmethod(np.tanh)\n    def forward(self, Z):\n        return self.f(Z)\n",
}


@pytest.mark.parametrize("name", list(FORBIDDEN))
def test_library_tanh_is_found(name):
    found = violations(FORBIDDEN[name], "Tanh", ("tanh",))
    assert found and all(f.startswith("line ") for f in found), found


ALLOWED = {
    "exp-formula-comments-docstrings-other-classes": GOOD,
    "local-variable-named-tanh": _src(
        """
        import numpy as np
        class Tanh:
            def forward(self, Z):
                E = np.exp(-2 * np.abs(Z))
                tanh = np.sign(Z) * (1 - E) / (1 + E)
                self.A = tanh
                return tanh
        """
    ),
    "own-helper-named-tanh": _src(
        """
        import numpy as np
        def tanh(x):
            e = np.exp(-2 * np.abs(x))
            return np.sign(x) * (1 - e) / (1 + e)
        class Tanh:
            def forward(self, Z):
                self.A = tanh(Z)
                return self.A
        """
    ),
    "own-tanh-after-star-import": _src(
        """
        from numpy import *
        def tanh(x):
            e = exp(-2 * abs(x))
            return sign(x) * (1 - e) / (1 + e)
        class Tanh:
            def forward(self, Z):
                return tanh(Z)
        """
    ),
    "argument-named-tanh": "class Tanh:\n    def forward(self, Z, tanh=None):\n        return tanh\n",
    "attribute-named-tanh": _src(
        """
        import numpy as np
        class Tanh:
            def forward(self, Z):
                self.tanh = (np.exp(Z) - np.exp(-Z)) / (np.exp(Z) + np.exp(-Z))
                return self.tanh
        """
    ),
    "string-tanh": "class Tanh:\n    name = 'tanh'\n    def forward(self, Z):\n        return {'tanh': Z}['tanh']\n",
    "unused-library-import": "from numpy import tanh\nclass Tanh:\n    def forward(self, Z):\n        return Z\n",
    "tanh-in-another-class-only": _src(
        """
        import numpy as np
        class GELU:
            def forward(self, Z):
                return np.tanh(Z)
        class Tanh:
            def forward(self, Z):
                return Z
        """
    ),
    "helper-shadows-import-locally": _src(
        """
        from math import tanh
        import numpy as np
        class Tanh:
            def forward(self, Z):
                tanh = np.exp
                return tanh(Z)
        """
    ),
}


@pytest.mark.parametrize("name", list(ALLOWED))
def test_own_code_is_not_accused(name):
    assert violations(ALLOWED[name], "Tanh", ("tanh",)) == []


def test_missing_class_is_not_judged():
    assert violations("x = 1\n", "Tanh", ("tanh",)) is None


# ---------------------------------------------------------------- graded


def _tanh_rule(grader, tmp_path, source):
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    return report, by_name(report)["Tanh rule: no np.tanh"]


def test_np_tanh_costs_the_rule_point(grader, tmp_path):
    source = replace_method(
        REFERENCE_SOURCE, "Tanh", "forward", "self.A = np.tanh(Z)\nreturn self.A"
    )
    report, rule = _tanh_rule(grader, tmp_path, source)
    assert (rule.status, rule.failure_kind, rule.score) == (FAILED, RULE, 0.0)
    assert "np.tanh" in rule.output
    assert "rule x" in render.table(report)


def test_helper_named_tanh_keeps_the_rule_point(grader, tmp_path):
    source = replace_method(
        REFERENCE_SOURCE,
        "Tanh",
        "forward",
        "tanh = np.exp(-2.0 * np.abs(Z))\ntanh = np.sign(Z) * (1.0 - tanh) / (1.0 + tanh)\n"
        "self.A = tanh\nreturn self.A",
    )
    report, rule = _tanh_rule(grader, tmp_path, source)
    assert rule.status == PASSED and report.score == FULL_MARKS


def test_rule_is_judged_when_forward_runs_but_fails(grader, tmp_path):
    # A wrong forward without any tanh: the forward loses its points, the rule does not.
    source = replace_method(
        REFERENCE_SOURCE,
        "Tanh",
        "forward",
        "E = np.exp(-2.0 * Z)\nself.A = (1.0 + E) / (1.0 - E)\nreturn self.A",
    )
    report, rule = _tanh_rule(grader, tmp_path, source)
    assert by_name(report)["Tanh forward (public)"].cases_passed == 0
    assert rule.status == PASSED and rule.score == rule.max_score
    assert "rule ok" in render.table(report)


def test_rule_not_judged_when_forward_never_runs(grader, tmp_path):
    # The handout stub raises NotImplementedError: nothing to judge, shown as "rule -".
    stub = (files.PROJECT_ROOT / "handout" / "mytorch" / "nn" / "activation.py").read_text()
    report, rule = _tanh_rule(grader, tmp_path, stub)
    assert (rule.status, rule.failure_kind, rule.score) == (FAILED, NOT_RUN, 0.0)
    tanh_row = next(line for line in render.table(report).splitlines() if line.startswith("Tanh "))
    assert "rule -" in tanh_row
