"""The course model: presets, course files, validation, digests, init."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autograder import files
from autograder.course import assignment
from autograder.course import course_file as course
from autograder.course.cases import materialize
from autograder.course.course_file import CourseError
from autograder.course.hidden_cases import HIDDEN

PRESETS = {"cmu-f23", "cmu-s25", "cmu-f25", "full"}
CMU_SIX = ("Identity", "Sigmoid", "Tanh", "ReLU", "GELU", "Softmax")
CMU_SEVEN = ("Identity", "Sigmoid", "Tanh", "ReLU", "GELU", "Swish", "Softmax")


def table_ids(visibility: str) -> list[tuple[str, str]]:
    """(activation, case id) of every case of the table, numbered as the checks number them."""
    out = []
    for act in assignment.ACTIVATIONS:
        specs = act.public if visibility == "public" else HIDDEN.get(act.name, ())
        out += [(act.name, f"{act.name}-{visibility[0]}{i}") for i in range(1, len(specs) + 1)]
    return out


# ------------------------------------------------------------------ presets


def test_exactly_the_named_presets_ship_and_load():
    assert set(course.preset_names()) == PRESETS
    for name in PRESETS:
        c = course.load(name)
        assert c.name == name and c.source == f"preset {name}"
        assert sum(a.max_score for a in c.rows()) == pytest.approx(c.total)


def test_full_is_todays_table_exactly():
    full = course.load("full")
    assert full.rows() == assignment.ACTIVATIONS  # points, rules, public specs, tolerances
    assert full.total == assignment.MAX_SCORE == 100
    assert full.credit == "proportional" and full.constructor_args == "all"
    assert [(a, i) for a, i, _ in full.public] == table_ids("public")
    assert [(a, i) for a, i, _ in full.hidden] == table_ids("hidden")
    assert [s for a, _, s in full.hidden] == [s for v in HIDDEN.values() for s in v]
    assert full.excluded == ()
    assert full.autolab_problems() == tuple(a.name for a in assignment.ACTIVATIONS)
    assert full.test_name("ReLU", "backward", "public") == "ReLU backward (public)"
    assert full.rule_test_name("Tanh", "no np.tanh") == "Tanh rule: no np.tanh"


def test_cmu_presets_follow_the_terms():
    f23, s25, f25 = (course.load(n) for n in ("cmu-f23", "cmu-s25", "cmu-f25"))
    assert f23.names == s25.names == CMU_SIX
    assert f25.names == CMU_SEVEN
    for c in (f23, s25, f25):
        assert c.total == 10
        assert c.credit == "proportional"  # a defect costs only its class's points
        assert c.constructor_args == "defaults"
        assert all(not spec.kwargs for _, _, spec in (*c.public, *c.hidden))
        assert c.autolab_problems() == ("Activation",)
    # np.tanh: allowed until Fall 2024 and (as the issue asks) in cmu-f25; Spring 2025 forbids it.
    assert f23.row("Tanh").rules == () and f25.row("Tanh").rules == ()
    assert [r.names for r in s25.row("Tanh").rules] == [("tanh",)]
    assert set(f25.row("Swish").points) == {"forward", "backward", "dLdbeta"}


def test_cmu_f25_says_how_to_turn_the_tanh_rule_on_and_that_recipe_works():
    # The real Fall 2025 autograder forbids np.tanh; the preset's comments give the recipe.
    text = course.preset_text("cmu-f25")
    comments = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    comments = " ".join(comments.split())
    assert "Fall 2025 autograder" in comments and "forbids np.tanh" in comments
    line = re.search(r"add the line (rules = \{ no_np_tanh = [0-9.]+ \})", comments).group(1)
    lowered = re.findall(
        r"((?:forward|backward) = \{ public = [0-9.]+, hidden = [0-9.]+ \})", comments
    )
    assert len(lowered) == 2
    head, _, rest = text.partition("\n[activations.Tanh]\n")
    block, sep, tail = rest.partition("\n\n")
    kept = [x for x in block.splitlines() if not x.startswith(("forward", "backward"))]
    edited = "\n".join([*lowered, line, *kept])
    ruled = course.parse(head + "\n[activations.Tanh]\n" + edited + sep + tail)
    assert [r.names for r in ruled.row("Tanh").rules] == [("tanh",)]
    assert ruled.total == 10
    assert ruled.row("Tanh").max_score == course.load("cmu-f25").row("Tanh").max_score
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cmu-semesters.md").read_text()
    assert line in doc


def test_cmu_presets_leave_out_only_inputs_the_course_never_asked_for():
    f23, s25, full = course.load("cmu-f23"), course.load("cmu-s25"), course.load("full")
    assert f23.left_out == (("Tanh", "large |Z|"), ("Softmax", "large |Z|"))
    assert s25.left_out == (("Tanh", "large |Z|"),)  # Spring 2025 tests Softmax on |Z| ~ 1e4
    assert f23.excluded == s25.excluded == ()  # no case named: nothing hidden in the file
    ids = {v: {cid for _, cid, _ in f23.cases(v)} for v in ("public", "hidden")}
    assert {"Tanh-p4", "Softmax-p3"}.isdisjoint(ids["public"])
    assert {"Tanh-h3", "Softmax-h2"}.isdisjoint(ids["hidden"])
    assert {"Tanh-p5", "Tanh-h2", "Softmax-h3"} <= ids["public"] | ids["hidden"]
    # Ids stay the table's: the case after a left-out one keeps its number.
    assert [i for i, _ in f23.case_specs("Tanh", "public")] == [
        "Tanh-p1",
        "Tanh-p2",
        "Tanh-p3",
        "Tanh-p5",
        "Tanh-p6",
    ]
    assert full.left_out == ()


def test_large_inputs_are_noted_so_a_course_can_leave_them_out():
    # leave_out works by note: a large-|Z| case without the note would stay graded.
    for act in assignment.ACTIVATIONS:
        for spec in (*act.public, *HIDDEN[act.name]):
            Z, _ = materialize(spec)
            large = float(np.max(np.abs(Z))) >= 100
            assert large == (spec.note == "large |Z|"), (act.name, spec)


def test_no_preset_names_a_hidden_case():
    # Presets ship in the student bundle, which must not name a hidden case.
    hidden = [cid for _, cid in table_ids("hidden")]
    for name in PRESETS:
        text = course.preset_text(name)
        assert not [cid for cid in hidden if cid in text], name


def test_rows_follow_table_order_whatever_the_file_order():
    text = """
[course]
total = 3
[activations.ReLU]
forward = { public = 1 }
[activations.Identity]
forward = { public = 2 }
"""
    c = course.parse(text)
    assert c.names == ("Identity", "ReLU")
    assert c.row("Identity").points == {"forward": assignment.Points(2, 0)}


def test_only_graded_cases_are_listed():
    text = """
[course]
total = 2
[activations.ReLU]
forward = { public = 1 }
backward = { public = 1 }
[activations.Identity]
forward = { hidden = 0 }
"""
    with pytest.raises(CourseError, match=r"activations\.Identity: no phase has points"):
        course.parse(text)
    c = course.parse(
        text.replace("forward = { hidden = 0 }", "forward = { hidden = 0.5 }").replace(
            "total = 2", "total = 2.5"
        )
    )
    assert c.case_specs("ReLU", "hidden") == () and c.case_specs("ReLU", "public")
    assert c.case_specs("Identity", "public") == () and c.case_specs("Identity", "hidden")


def test_defaults_only_drops_cases_with_constructor_arguments():
    text = """
[course]
total = 2
constructor_args = "defaults"
[activations.Swish]
forward = { public = 1, hidden = 1 }
"""
    c = course.parse(text)
    ids = [i for i, _ in c.case_specs("Swish", "public")]
    everything = [f"Swish-p{i}" for i in range(1, len(assignment.BY_NAME["Swish"].public) + 1)]
    with_args = [
        f"Swish-p{i}" for i, s in enumerate(assignment.BY_NAME["Swish"].public, 1) if s.kwargs
    ]
    assert with_args and ids == [i for i in everything if i not in with_args]
    assert c.row("Swish").public == tuple(s for _, s in c.case_specs("Swish", "public"))


# ------------------------------------------------------------------ scoring and names


def test_proportional_and_all_or_nothing_credit():
    text = course.preset_text("cmu-f23")
    c = course.parse(text)
    full_marks = {a.name: a.max_score for a in c.rows()}
    short = dict(full_marks, GELU=full_marks["GELU"] - 0.5)
    assert c.score(full_marks) == 10 and c.score(short) == 9.5
    aon = course.parse(text.replace('credit = "proportional"', 'credit = "all-or-nothing"'))
    assert aon.score(full_marks) == 10
    assert aon.score(short) == 0 and aon.autolab_scores(short) == {"Activation": 0}
    assert aon.autolab_scores(full_marks) == {"Activation": 10}


def test_autolab_per_activation_and_gradebook_columns():
    full = course.load("full")
    scores = {"Identity": 4.0, "Tanh": 3.25}
    out = full.autolab_scores(scores)
    assert list(out) == list(full.names) and out["Tanh"] == 3.25 and out["ReLU"] == 0
    assert full.gradebook_columns() == ("submission", "score", "max_score", *full.names)
    f25 = course.load("cmu-f25")
    assert f25.gradebook_columns()[3:] == CMU_SEVEN


def test_test_names_follow_the_templates():
    text = course.preset_text("cmu-f23").replace(
        'test_name = "{activation} {phase} ({visibility})"',
        'test_name = "HW1P1 {activation}.{phase} [{visibility}]"',
    )
    c = course.parse(text)
    assert c.test_name("GELU", "forward", "hidden") == "HW1P1 GELU.forward [hidden]"


# ------------------------------------------------------------------ validation

BASE = """
[course]
total = 10
credit = "proportional"
constructor_args = "defaults"

[autolab]
problems = "single"
problem = "Activation"

[activations.Tanh]
forward = { public = 2, hidden = 2 }
backward = { public = 2, hidden = 2 }
rules = { no_np_tanh = 2 }
"""

INVALID = [
    # (replace this, with this, the error's key, a phrase of the problem)
    (
        "[activations.Tanh]",
        "[activations.GeLU]",
        "activations.GeLU",
        "no such class (did you mean GELU?)",
    ),
    ("[activations.Tanh]", "[activations.softmax]", "activations.softmax", "did you mean Softmax?"),
    ("total = 10", "totl = 10", "course.totl", "unknown key (did you mean total?)"),
    ("total = 10", "total = 11", "course.total", "add up to 10, not 11"),
    ("total = 10\n", "", "course.total", "missing"),
    ("total = 10", "total = 0", "course.total", "more than 0"),
    ('"proportional"', '"all_or_nothing"', "course.credit", "did you mean all-or-nothing?"),
    ('"defaults"', '"default"', "course.constructor_args", "is not one of defaults, all"),
    ('problems = "single"', 'problems = "one"', "autolab.problems", "not one of"),
    ('problems = "single"', 'problems = "per-activation"', "autolab.problem", "only used with"),
    ("[autolab]", "[autolab]\nproblme = 1", "autolab.problme", "did you mean problem?"),
    (
        "[autolab]",
        '[gradescope]\ntest_name = "{activation} {stage}"\n[autolab]',
        "gradescope.test_name",
        "unknown field {stage}",
    ),
    (
        "forward = { public = 2",
        "forwrd = { public = 2",
        "activations.Tanh.forwrd",
        "did you mean forward?",
    ),
    (
        "forward = { public = 2",
        "dLdbeta = { public = 2",
        "activations.Tanh.dLdbeta",
        "Tanh has no phase dLdbeta (its phases: forward, backward)",
    ),
    (
        "public = 2, hidden = 2 }\nbackward",
        "public = 2, hiden = 2 }\nbackward",
        "activations.Tanh.forward.hiden",
        "did you mean hidden?",
    ),
    (
        "forward = { public = 2,",
        'forward = { public = "2",',
        "activations.Tanh.forward.public",
        "must be a number",
    ),
    (
        "forward = { public = 2,",
        "forward = { public = -2,",
        "activations.Tanh.forward.public",
        "cannot be negative",
    ),
    (
        "forward = { public = 2, hidden = 2 }",
        "forward = 4",
        "activations.Tanh.forward",
        "must be a table",
    ),
    ("no_np_tanh = 2", "no_tanh = 2", "activations.Tanh.rules.no_tanh", "did you mean no_np_tanh?"),
    (
        "rules = { no_np_tanh = 2 }",
        'rules = { no_np_tanh = 2 }\nexclude = ["Tanh-p9"]',
        "activations.Tanh.exclude",
        "no case Tanh-p9",
    ),
    (
        "rules = { no_np_tanh = 2 }",
        'rules = { no_np_tanh = 2 }\nexclude = ["ReLU-p1"]',
        "activations.Tanh.exclude",
        "not a case id of Tanh",
    ),
    (
        "rules = { no_np_tanh = 2 }",
        'rules = { no_np_tanh = 2 }\nexclude = "Tanh-p1"',
        "activations.Tanh.exclude",
        "must be a list",
    ),
    (
        "rules = { no_np_tanh = 2 }",
        'rules = { no_np_tanh = 2 }\nexclude = ["Tanh-h1", "Tanh-h2", "Tanh-h3"]',
        "activations.Tanh",
        "no hidden case is left",
    ),
    (
        "[activations.Tanh]",
        "[activations.ReLU]\nforward = { public = 0 }\n[activations.Tanh]",
        "activations.ReLU",
        "no phase has points",
    ),
    (
        "[activations.Tanh]",
        "[activations.ReLU]\nforward = { public = 1 }\nrules = { no_np_tanh = 1 }\n[activations.Tanh]",
        "activations.ReLU.rules.no_np_tanh",
        "ReLU has no rules",
    ),
    (
        "rules = { no_np_tanh = 2 }",
        'rules = { no_np_tanh = 2 }\nleave_out = ["big Z"]',
        "activations.Tanh.leave_out",
        "no public case of Tanh is noted 'big Z'",
    ),
    (
        "rules = { no_np_tanh = 2 }",
        'rules = { no_np_tanh = 2 }\nleave_out = "large |Z|"',
        "activations.Tanh.leave_out",
        "must be a list",
    ),
    (
        "[activations.Tanh]",
        "[activations.Tanh.extra]\n[activations.Tanh]",
        "activations.Tanh.extra",
        "unknown key",
    ),
    ("[autolab]", "[activations.Tanh]\n[autolab]", "", "not valid TOML"),
    ("total = 10", "total = = 10", "", "not valid TOML"),
    ("[course]", "course = 3\n[coursework]", "coursework", "unknown key"),
    ("[activations.Tanh]\n", "[activations]\n", "activations", "no activation is graded"),
]


@pytest.mark.parametrize(
    ("old", "new", "key", "phrase"), INVALID, ids=[i[2] or i[3] for i in INVALID]
)
def test_an_invalid_course_is_one_line_naming_the_key(old, new, key, phrase):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    if new == "[activations]\n":  # an empty activations table
        text = text.split("[activations]")[0] + "[activations]\n"
    with pytest.raises(CourseError) as info:
        course.parse(text)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    prefix = f"course.toml: {key}: " if key else "course.toml: "
    assert message.startswith(prefix), message
    assert phrase in message, message


def test_the_base_of_the_invalid_cases_is_valid():
    c = course.parse(BASE)
    assert c.names == ("Tanh",) and c.total == 10


def test_a_class_the_reference_lacks_is_refused(tmp_path, monkeypatch):
    source = files.REFERENCE_PATH.read_text(encoding="utf-8")
    lacking = tmp_path / "activation.py"
    lacking.write_text(source.replace("class GELU:", "class GELUx:"), encoding="utf-8")
    monkeypatch.setenv(files.REFERENCE_ENV, str(lacking))
    text = "[course]\ntotal = 2\n[activations.GELU]\nforward = { public = 1, hidden = 1 }\n"
    with pytest.raises(CourseError, match=r"^course.toml: activations.GELU: the reference has no"):
        course.parse(text)
    monkeypatch.delenv(files.REFERENCE_ENV)
    assert course.parse(text).names == ("GELU",)


def test_without_hidden_cases_hidden_ids_are_not_checked(monkeypatch):
    # A student bundle has no hidden_cases module: the course still loads, public only.
    monkeypatch.setattr(course, "_hidden_table", lambda: None)
    c = course.load("cmu-f23")
    assert c.hidden is None and c.cases("hidden") == ()
    assert c.public == course.load("cmu-f23").public
    text = BASE.replace(
        "rules = { no_np_tanh = 2 }", 'rules = { no_np_tanh = 2 }\nexclude = ["Tanh-h9"]'
    )
    assert course.parse(text).excluded == ("Tanh-h9",)


def test_a_newline_in_a_value_never_breaks_the_one_line_message():
    text = BASE.replace('"proportional"', '"""a\nb"""')
    with pytest.raises(CourseError) as info:
        course.parse(text)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ loading and files


def test_load_tells_presets_from_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "full").write_text(BASE, encoding="utf-8")
    assert course.load("full").total == 100  # a bare name is the preset
    assert course.load("./full").total == 10  # a path is a file
    assert course.load(tmp_path / "full").source == "full"
    with pytest.raises(
        CourseError, match=r"^cmu-f24: no such preset \(did you mean cmu-f2[35]\?\)"
    ):
        course.load("cmu-f24")
    with pytest.raises(CourseError, match=r"^nope.toml: no such file$"):
        course.load("nope.toml")
    with pytest.raises(CourseError, match="is a directory"):
        course.load(str(tmp_path) + "/")


def test_find_default_is_full_unless_the_repository_has_a_course_file(tmp_path):
    assert course.find_default(tmp_path).digest() == course.load("full").digest()
    (tmp_path / "course.toml").write_text(BASE, encoding="utf-8")
    found = course.find_default(tmp_path)
    assert found.total == 10 and found.source == "course.toml"
    (tmp_path / "course.toml").write_text("total = ", encoding="utf-8")
    with pytest.raises(CourseError, match=r"^course.toml: not valid TOML"):
        course.find_default(tmp_path)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_init_writes_a_file_that_loads_back_to_the_same_course(tmp_path, preset):
    path = course.init(preset, tmp_path / "course.toml")
    assert path.read_text(encoding="utf-8") == course.preset_text(preset)
    back, original = course.load(path), course.load(preset)
    assert back.digest() == original.digest()
    assert back.rows() == original.rows() and back.name == preset
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course.toml"]  # no temp file left
    text = path.read_text(encoding="utf-8")
    for key in ("total", "credit", "constructor_args", "problems", "test_name", "exclude", "rules"):
        assert re.search(rf"^#\s+{key}\b", text, re.M), f"the comments do not explain {key}"


def test_init_refuses_to_overwrite(tmp_path):
    path = tmp_path / "course.toml"
    path.write_text("mine\n", encoding="utf-8")
    with pytest.raises(CourseError, match=r"^course.toml: already exists; not overwritten"):
        course.init("cmu-f23", path)
    assert path.read_text(encoding="utf-8") == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course.toml"]
    with pytest.raises(CourseError, match="no such preset"):
        course.init("cmu-x", tmp_path / "other.toml")
    assert not (tmp_path / "other.toml").exists()


# ------------------------------------------------------------------ digest

CHANGES = [
    (
        "total = 10",
        "total = 20",
        "forward = { public = 2, hidden = 2 }",
        "forward = { public = 12, hidden = 2 }",
    ),
    ("forward = { public = 2, hidden = 2 }", "forward = { public = 3, hidden = 1 }", None, None),
    ('"proportional"', '"all-or-nothing"', None, None),
    ('"defaults"', '"all"', None, None),
    ("rules = { no_np_tanh = 2 }", 'rules = { no_np_tanh = 2 }\nexclude = ["Tanh-p1"]', None, None),
    (
        "rules = { no_np_tanh = 2 }",
        'rules = { no_np_tanh = 2 }\nleave_out = ["Z near 0"]',
        None,
        None,
    ),
    (
        "rules = { no_np_tanh = 2 }",
        "",
        "forward = { public = 2, hidden = 2 }",
        "forward = { public = 4, hidden = 2 }",
    ),
    ('problem = "Activation"', 'problem = "Activations"', None, None),
    (
        "[autolab]",
        '[gradescope]\ntest_name = "{activation}/{phase}/{visibility}"\n[autolab]',
        None,
        None,
    ),
]


@pytest.mark.parametrize("change", CHANGES, ids=[c[1].split("\n")[-1][:30] for c in CHANGES])
def test_the_digest_changes_when_anything_graded_changes(change):
    old, new, old2, new2 = change
    text = BASE.replace(old, new, 1)
    if old2:
        text = text.replace(old2, new2, 1)
    assert course.parse(text).digest() != course.parse(BASE).digest()


def test_the_digest_ignores_names_comments_and_order():
    base = course.parse(BASE).digest()
    assert course.parse(BASE, source="other.toml").digest() == base
    renamed = BASE.replace("[course]", '[course]\nname = "x"\ntitle = "y"  # a comment')
    assert course.parse(renamed).digest() == base
    reordered = BASE.replace("total = 10\n", "").replace("[course]", "[course]\ntotal = 10.0")
    assert course.parse(reordered).digest() == base


def test_the_digest_changes_with_a_hidden_case(monkeypatch):
    base = course.load("full").digest()
    changed = dict(HIDDEN, Identity=HIDDEN["Identity"][:1])
    monkeypatch.setattr(course, "_hidden_table", lambda: changed)
    assert course.load("full").digest() != base


def test_the_digest_is_the_same_in_another_process():
    code = "from autograder.course import course_file; print(course_file.load('cmu-f25').digest())"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == course.load("cmu-f25").digest()


def test_presets_differ_from_each_other():
    digests = {course.load(n).digest() for n in PRESETS}
    assert len(digests) == len(PRESETS)


def test_preset_files_ship_as_package_data():
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"autograder.course" = ["data/*.json", "presets/*.toml"]' in pyproject


def test_the_full_preset_file_is_generated_from_the_table():
    committed = (Path(course.__file__).parent / "presets" / "full.toml").read_text("utf-8")
    assert committed == course.full_preset_text(), (
        "presets/full.toml differs from the assignment table: write "
        "course.full_preset_text() to it (the table is the one source of its points)"
    )


def test_every_preset_opens_with_the_same_explanation_of_the_keys():
    header = course.preset_text("cmu-f23").split("\n\n")[0]
    assert "constructor_args" in header and "exclude" in header
    for name in PRESETS:
        assert course.preset_text(name).startswith(header + "\n"), name


def test_init_without_hard_links_still_never_overwrites(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = course.init("cmu-s25", tmp_path / "course.toml")
    assert course.load(path).digest() == course.load("cmu-s25").digest()
    path.write_text("mine\n", encoding="utf-8")
    monkeypatch.setattr(Path, "exists", lambda self: False)  # as if it appeared meanwhile
    monkeypatch.setattr(Path, "is_symlink", lambda self: False)
    with pytest.raises(CourseError, match="already exists; not overwritten"):
        course.init("cmu-s25", path)
    assert path.read_text(encoding="utf-8") == "mine\n"
