"""The stub generator (autograder/build/stubs.py) and the committed handout it makes.

* unit tests of ``strip_solutions`` and ``solution_lines`` on small sources;
* the committed handout: no drift from the generator, imports cleanly, the
  same classes and signatures as the reference, Identity works and every
  other method raises NotImplementedError, no solution code, the docs and
  the CMU skeleton kept;
* the committed public case data: no drift from the generator.
"""

import ast
import importlib.util
import inspect
import re
import warnings

import numpy as np
import pytest

from autograder import files
from autograder.build import handout, stubs
from autograder.build.stubs import MarkerError, solution_lines, strip_solutions
from autograder.course import assignment, cases, course_file, reference

REFERENCE_SOURCE = files.REFERENCE_PATH.read_text(encoding="utf-8")

# --------------------------------------------------------------------------- #
# strip_solutions
# --------------------------------------------------------------------------- #

SOURCE = """\
import numpy as np

### BEGIN SOLUTION


def _helper(X):
    return np.maximum(X, 0)


### END SOLUTION


class ReLU:
    \"\"\"A docstring.\"\"\"

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.A = _helper(Z)
        ### STUB
        #| self.A = None  # TODO
        #|
        #| for i in range(3):
        #|     pass
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        dLdZ = dLdA * (self.A > 0)
        ### END SOLUTION
        return dLdZ
"""

EXPECTED = """\
import numpy as np


class ReLU:
    \"\"\"A docstring.\"\"\"

    def forward(self, Z):
        self.A = None  # TODO

        for i in range(3):
            pass
        return self.A

    def backward(self, dLdA):
        raise NotImplementedError  # TODO
        return dLdZ
"""


def test_strip_solutions_on_a_small_module():
    assert strip_solutions(SOURCE) == EXPECTED


def test_a_region_is_replaced_by_its_stub_lines():
    src = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### STUB\n    #| return None  # TODO\n    ### END SOLUTION\n"
    assert strip_solutions(src) == "def f():\n    return None  # TODO\n"


def test_stub_lines_keep_their_extra_indentation_and_lose_one_space():
    src = (
        "def f():\n"
        "    ### BEGIN SOLUTION\n"
        "    pass\n"
        "    ### STUB\n"
        "    #| if x:\n"
        "    #|     y = 1   \n"
        "    #|no_space = 2\n"
        "    #|\n"
        "    #|   \n"
        "    #| z = 3\n"
        "    ### END SOLUTION\n"
    )
    assert strip_solutions(src) == (
        "def f():\n    if x:\n        y = 1\n    no_space = 2\n\n\n    z = 3\n"
    )


def test_a_module_level_region_without_a_stub_disappears():
    src = "a = 1\n### BEGIN SOLUTION\nsecret = 2\n### END SOLUTION\nb = 3\n"
    assert strip_solutions(src) == "a = 1\nb = 3\n"


def test_a_module_level_region_with_a_stub_is_replaced():
    src = "a = 1\n### BEGIN SOLUTION\nsecret = 2\n### STUB\n#| secret = None\n### END SOLUTION\n"
    assert strip_solutions(src) == "a = 1\nsecret = None\n"


def test_an_indented_region_without_a_stub_raises_not_implemented():
    src = "class A:\n    def f(self):\n        ### BEGIN SOLUTION\n        return 42\n        ### END SOLUTION\n"
    out = strip_solutions(src)
    assert "42" not in out
    assert out.splitlines()[-1].startswith("        raise NotImplementedError")
    namespace = {}
    exec(compile(out, "<stub>", "exec"), namespace)
    with pytest.raises(NotImplementedError):
        namespace["A"]().f()


def test_blank_lines_left_behind_collapse_to_two():
    src = "import x\n\n\n### BEGIN SOLUTION\ndef h():\n    pass\n### END SOLUTION\n\n\nclass A:\n    pass\n"
    out = strip_solutions(src)
    assert out == "import x\n\n\nclass A:\n    pass\n"
    assert "\n\n\n\n" not in strip_solutions(REFERENCE_SOURCE)


def test_two_blank_lines_of_ordinary_code_stay():
    src = "import x\n\n\nclass A:\n    pass\n"
    assert strip_solutions(src) == src


def test_code_without_regions_is_unchanged_up_to_trailing_whitespace():
    src = "a = 1   \n\n\nb = 2\n"
    assert strip_solutions(src) == "a = 1\n\n\nb = 2\n"


def test_markers_may_carry_surrounding_whitespace():
    src = "def f():\n    ### BEGIN SOLUTION   \n    return 1\n    ### STUB\t\n    #| pass\n    ### END SOLUTION \n"
    assert strip_solutions(src) == "def f():\n    pass\n"


def test_the_reference_stubs_compile_and_keep_no_marker():
    out = strip_solutions(REFERENCE_SOURCE)
    compile(out, "activation.py", "exec")
    for marker in (stubs.BEGIN, stubs.STUB, stubs.END, stubs.STUB_PREFIX):
        assert marker not in out


BAD_SOURCES = [
    # (what, source, the line the message must name)
    ("unclosed", "x = 1\n### BEGIN SOLUTION\ny = 2\n", 2),
    ("unclosed in a stub", "x = 1\n\n### BEGIN SOLUTION\ny\n### STUB\n#| z\n", 3),
    ("nested", "### BEGIN SOLUTION\na = 1\n### BEGIN SOLUTION\n### END SOLUTION\n", 3),
    ("begin inside a stub", "### BEGIN SOLUTION\na\n### STUB\n#| b\n### BEGIN SOLUTION\n", 5),
    ("second stub", "### BEGIN SOLUTION\n### STUB\n#| a\n### STUB\n### END SOLUTION\n", 4),
    ("stray end", "x = 1\n### END SOLUTION\n", 2),
    ("stray stub", "x = 1\ny = 2\n### STUB\n", 3),
    ("stray end after a region", "### BEGIN SOLUTION\n### END SOLUTION\n### END SOLUTION\n", 3),
    (
        "stub line without #|",
        "def f():\n    ### BEGIN SOLUTION\n    x = 1\n    ### STUB\n    y = 2\n    ### END SOLUTION\n",
        5,
    ),
    (
        "stub line indented less than the markers",
        "def f():\n    ### BEGIN SOLUTION\n    x = 1\n    ### STUB\n#| y = 2\n    ### END SOLUTION\n",
        5,
    ),
]


@pytest.mark.parametrize(("what", "source", "line"), BAD_SOURCES, ids=[b[0] for b in BAD_SOURCES])
def test_malformed_markers_raise_marker_error_with_the_line(what, source, line):
    with pytest.raises(MarkerError) as err:
        strip_solutions(source)
    assert re.search(rf"\bline {line}\b", str(err.value)), str(err.value)
    assert isinstance(err.value, ValueError)


# --------------------------------------------------------------------------- #
# solution_lines
# --------------------------------------------------------------------------- #


def test_solution_lines_are_the_code_lines_of_the_solution_parts():
    assert solution_lines(SOURCE) == [
        "def _helper(X):",
        "return np.maximum(X, 0)",
        "self.A = _helper(Z)",
        "dLdZ = dLdA * (self.A > 0)",
    ]


def test_solution_lines_skip_comments_short_lines_and_stubs():
    src = (
        "outside_the_region = 1\n"
        "### BEGIN SOLUTION\n"
        "# a comment that is long enough\n"
        "x = 1\n"
        "   long_enough_line = 2   \n"
        "### STUB\n"
        "#| stub_line_is_not_a_solution = None\n"
        "### END SOLUTION\n"
        "after_the_region = 3\n"
    )
    assert solution_lines(src) == ["long_enough_line = 2"]


def test_solution_lines_of_the_reference():
    lines = solution_lines(REFERENCE_SOURCE)
    assert "E = np.exp(-np.abs(X))" in lines
    assert "self.A = np.maximum(Z, 0)" in lines
    assert "dLdZ = A * (dLdA - np.sum(dLdA * A, axis=1, keepdims=True))" in lines
    stripped = {line.strip() for line in REFERENCE_SOURCE.splitlines()}
    for line in lines:
        assert line in stripped
        assert not line.startswith("#")
        assert len(line) >= 12


# --------------------------------------------------------------------------- #
# The committed handout
# --------------------------------------------------------------------------- #

HANDOUT_TEXT = handout.STUB_PATH.read_text(encoding="utf-8")
HANDOUT_TREE = ast.parse(HANDOUT_TEXT)
ref = reference.load_module(files.REFERENCE_PATH)


def load_handout():
    spec = importlib.util.spec_from_file_location("_handout_activation", handout.STUB_PATH)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec.loader.exec_module(module)
    return module


def classes_of(module):
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isclass(value) and value.__module__ == module.__name__
    }


REF_CLASSES = classes_of(ref)
STUBBED = sorted(set(REF_CLASSES) - {"Identity"})


def test_the_handout_does_not_drift_from_the_generator():
    assert stubs.stub_text() == HANDOUT_TEXT, (
        "handout/mytorch/nn/activation.py is stale: run `make handout-files`"
    )


def test_the_handout_imports_cleanly():
    module = load_handout()
    assert module.np is np


def test_the_handout_defines_the_classes_of_the_course():
    assert set(REF_CLASSES) == set(assignment.BY_NAME)
    assert list(classes_of(load_handout())) == list(course_file.in_effect().names)


@pytest.mark.parametrize("preset", ["cmu-f23", "cmu-f25"])
def test_a_course_s_stubs_hold_its_classes_exactly_as_the_full_stubs_do(preset):
    from autograder.course import course_file as course

    c = course.load(preset)
    text = stubs.stub_text(c)
    full = stubs.stub_text(course.load("full"))
    compile(text, "activation.py", "exec")
    tree = ast.parse(text)
    kept = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert kept == list(c.names)  # the course's classes, in table order, nothing else
    full_tree = ast.parse(full)
    segments = {
        n.name: ast.get_source_segment(full, n)
        for n in full_tree.body
        if isinstance(n, ast.ClassDef)
    }
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            assert ast.get_source_segment(text, node) == segments[node.name], node.name
    # The module's docstring and imports stay; no run of blank lines is left behind.
    head = full[: full.index("\nclass ")]
    assert text.startswith(head) and "\n\n\n\n" not in text


def test_keep_classes_drops_decorated_classes_whole():
    source = "import numpy as np\n\n\n@dec\nclass A:\n    pass\n\n\nclass B:\n    pass\n"
    assert stubs.keep_classes(source, ["B"]) == "import numpy as np\n\n\nclass B:\n    pass\n"


@pytest.mark.parametrize("name", sorted(REF_CLASSES))
def test_the_handout_keeps_the_method_signatures(name):
    stub = classes_of(load_handout())[name]
    solution = REF_CLASSES[name]
    for method in ("__init__", "forward", "backward"):
        assert (method in vars(stub)) == (method in vars(solution)), f"{name}.{method}"
        if method in vars(solution):
            assert inspect.signature(getattr(stub, method)) == inspect.signature(
                getattr(solution, method)
            ), f"{name}.{method}"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("LeakyReLU", {"alpha": 0.2}),
        ("ELU", {"alpha": 2.0}),
        ("CELU", {"alpha": 0.5}),
        ("Swish", {"beta": 0.5}),
        ("Softplus", {"beta": 2.0, "threshold": 10.0}),
    ],
)
def test_the_handout_constructors_keep_their_arguments(name, kwargs):
    obj = getattr(load_handout(), name)(**kwargs)
    for key, value in kwargs.items():
        assert getattr(obj, key) == value


def test_identity_works_in_the_handout():
    Identity = load_handout().Identity
    rng = np.random.default_rng(0)
    for shape in [(4, 5), (7,), (2, 3, 4)]:
        Z = rng.normal(size=shape)
        dLdA = rng.normal(size=shape)
        obj = Identity()
        A = obj.forward(Z)
        assert A is Z or np.array_equal(A, Z)
        assert obj.A is A
        dLdZ = obj.backward(dLdA)
        assert np.array_equal(dLdZ, dLdA)


@pytest.mark.parametrize("name", STUBBED)
def test_stubbed_forward_raises_not_implemented(name):
    obj = getattr(load_handout(), name)()
    with pytest.raises(NotImplementedError):
        obj.forward(np.ones((2, 3)))


@pytest.mark.parametrize("name", STUBBED)
def test_stubbed_backward_raises_not_implemented(name):
    obj = getattr(load_handout(), name)()
    # Whatever a forward would have stored, so backward fails only for being
    # a stub and not for a missing attribute.
    for attr in ("A", "Z", "s", "t"):
        setattr(obj, attr, np.full((2, 3), 0.5))
    with pytest.raises(NotImplementedError):
        obj.backward(np.ones((2, 3)))


def reference_public_lines():
    """Stripped lines of the reference outside its solution regions (given code)."""
    public, inside = set(), False
    for line in REFERENCE_SOURCE.splitlines():
        marker = line.strip()
        if marker == stubs.BEGIN:
            inside = True
        elif marker == stubs.END:
            inside = False
        elif not inside:
            public.add(marker)
    return public


def test_the_handout_carries_no_solution_line():
    leaked = [line for line in solution_lines(REFERENCE_SOURCE) if line in HANDOUT_TEXT]
    assert not leaked, leaked


def test_the_handout_carries_no_secret_solution_line():
    # The solution lines that are not also given code elsewhere in the reference.
    secret = [
        line for line in solution_lines(REFERENCE_SOURCE) if line not in reference_public_lines()
    ]
    assert len(secret) > 40
    handout_lines = {line.strip() for line in HANDOUT_TEXT.splitlines()}
    leaked = [line for line in secret if line in handout_lines or line in HANDOUT_TEXT]
    assert not leaked, leaked
    for helper in ("_sigmoid", "_softplus", "logaddexp", "expm1"):
        assert helper not in HANDOUT_TEXT


def _handout_classes():
    return {node.name: node for node in HANDOUT_TREE.body if isinstance(node, ast.ClassDef)}


def _method(class_name, method):
    node = next(
        n
        for n in _handout_classes()[class_name].body
        if isinstance(n, ast.FunctionDef) and n.name == method
    )
    return node, ast.get_source_segment(HANDOUT_TEXT, node)


def test_the_handout_has_a_module_docstring_and_class_docstrings():
    doc = ast.get_docstring(HANDOUT_TREE)
    assert doc and doc == ast.get_docstring(ast.parse(REFERENCE_SOURCE))
    for name, node in _handout_classes().items():
        class_doc = ast.get_docstring(node)
        assert class_doc, f"{name} has no docstring"
        assert class_doc == inspect.getdoc(REF_CLASSES[name]), name


@pytest.mark.parametrize("name", STUBBED)
def test_every_stubbed_method_says_todo(name):
    for method in ("forward", "backward"):
        _, text = _method(name, method)
        assert "TODO" in text, f"{name}.{method}"


def test_swish_documents_dLdbeta():
    node = _handout_classes()["Swish"]
    assert "dLdbeta" in ast.get_docstring(node)
    _, text = _method("Swish", "backward")
    assert "self.dLdbeta" in text and "TODO" in text


def test_softmax_backward_keeps_the_cmu_skeleton():
    node, text = _method("Softmax", "backward")
    assert "batch size" in text.lower()
    assert "Jacobian" in text
    assigned = {
        target.id
        for sub in ast.walk(node)
        if isinstance(sub, ast.Assign)
        for target in sub.targets
        if isinstance(target, ast.Name)
    }
    assert {"N", "C", "dLdZ", "J"} <= assigned, assigned
    loops = [sub for sub in ast.walk(node) if isinstance(sub, ast.For)]
    assert len(loops) == 1, "one loop over the rows"
    (loop,) = loops
    assert ast.unparse(loop.iter) == "range(N)"
    assert ast.unparse(loop.target) == "i"
    in_loop = {
        target.id
        for sub in ast.walk(loop)
        if isinstance(sub, ast.Assign)
        for target in sub.targets
        if isinstance(target, ast.Name)
    }
    assert "J" in in_loop, "J is built per row, inside the loop"
    assert "dLdZ[i, :]" in text


# --------------------------------------------------------------------------- #
# The committed public case data
# --------------------------------------------------------------------------- #


def test_the_public_case_data_does_not_drift_from_the_generator():
    committed = cases.PUBLIC_DATA.read_text(encoding="utf-8")
    assert committed == handout.public_data_text(), (
        "autograder/course/data/public_cases.json is stale: run `make handout-files`"
    )
