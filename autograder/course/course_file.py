"""The course: which of the table's activations a semester grades, for how many points, on what.

``assignment.py`` is the catalogue of every activation the reference
implements (its points, cases and rules as this project grades them); a
course selects from it and reweights. A course comes from a TOML file
(``course.toml`` at the top of the repository, or ``--course PATH``) or from
a preset shipped with the package (``--course cmu-f23``): ``full`` is the
whole catalogue exactly as the table gives it, the ``cmu-*`` presets follow
CMU 11-785's own local autograders of those terms (see docs/cmu-semesters.md).

A course file says:

- which activations are graded (a subset of the table's, graded in table order);
- the points of each activation's phases (forward, backward, Swish's dLdbeta),
  split between the public and the hidden test, and of its rules (no np.tanh);
  a rule left out is off;
- which constructor arguments are exercised (``defaults``: only cases built
  with ``Class()``, as CMU's autograder does; ``all``: every case of the table),
  and which cases are left out, by kind (the note the table gives them, such
  as "large |Z|") or by id;
- the credit mode (``proportional``: a test earns its points in proportion
  to the cases it passes; ``all-or-nothing``: the whole total or nothing, like
  CMU's section scoring) and the total, which the points must add up to;
- how scores are named on Autolab (one problem per activation, or a single
  problem such as ``Activation``) and on Gradescope (test names).

Everything here is the standard library plus the table (and the hidden rows,
where they exist): no module that runs or judges code is imported, and the
reference is only read, with ``ast``, to check that a graded class exists. An unusable course raises :class:`CourseError`,
whose message is one line naming the key, e.g.
``course.toml: activations.GeLU: no such class (did you mean GELU?)``.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import string
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from autograder import files
from autograder.course import assignment
from autograder.course.assignment import Activation, CaseSpec, ForbiddenNames, Points

COURSE_FILE = "course.toml"
DEFAULT_PRESET = "full"
PRESET_DIR = "presets"

PROPORTIONAL, ALL_OR_NOTHING = "proportional", "all-or-nothing"
CREDIT_MODES = (PROPORTIONAL, ALL_OR_NOTHING)
CONSTRUCTOR_ARGS = ("defaults", "all")
AUTOLAB_MODES = ("per-activation", "single")

DEFAULT_TEST_NAME = "{activation} {phase} ({visibility})"
DEFAULT_RULE_NAME = "{activation} rule: {rule}"
TEST_NAME_FIELDS = ("activation", "phase", "visibility")
RULE_NAME_FIELDS = ("activation", "rule")

# Points are compared with this slack: a file's decimals (0.1 + 0.2) need not be exact.
POINTS_SLACK = 1e-9
DIGEST_VERSION = 1

# The keys a course file may hold, by table: anything else is a typo.
COURSE_KEYS = ("name", "title", "total", "credit", "constructor_args")
AUTOLAB_KEYS = ("problems", "problem")
GRADESCOPE_KEYS = ("test_name", "rule_name")
TOP_KEYS = ("course", "autolab", "gradescope", "activations")
ACTIVATION_EXTRA_KEYS = ("rules", "exclude", "leave_out")

# A hidden case id as the table numbers them: the class, "-h" and a number.
HIDDEN_ID = re.compile(r"\b[A-Za-z][A-Za-z0-9_]*-h[1-9][0-9]*\b")

# (activation, case id, spec): one graded input, identified as feedback names it.
CaseRow = tuple[str, str, CaseSpec]


class CourseError(ValueError):
    """An unusable course file or preset; the message is one line naming the key."""


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Course:
    """What one semester grades: a selection and reweighting of the assignment table.

    ``activations`` are table rows (``assignment.Activation``) with the
    course's points and rules, in table order; their ``public`` specs are the
    course's public cases. Case ids are the table's (``Tanh-p4`` is the
    fourth public spec of Tanh in the table, whatever the course leaves out),
    so feedback and exclusions name the same case in every course.
    ``hidden`` is None where the hidden cases are not available (a student
    bundle).
    """

    name: str
    title: str
    source: str
    total: float
    credit: str
    constructor_args: str
    activations: tuple[Activation, ...]
    public: tuple[CaseRow, ...]
    hidden: tuple[CaseRow, ...] | None
    excluded: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]
    autolab_mode: str
    autolab_problem: str
    test_name_format: str
    rule_name_format: str
    # The TOML text it was read from (comments included): what a bundle ships as
    # its course.toml, and how a course crosses a process boundary (``__reduce__``).
    text: str = field(default="", compare=False, repr=False)

    def __reduce__(self):
        # The rows hold functions (Softplus's kinks), which pickle cannot carry:
        # a course travels as its text and is parsed again on the other side.
        return (parse, (self.text, self.source, self.name))

    # -------------------------------------------------------------- lookups

    @property
    def names(self) -> tuple[str, ...]:
        """The graded activations' class names, in table order."""
        return tuple(a.name for a in self.activations)

    @property
    def max_score(self) -> float:
        """The course's total: what a perfect submission scores."""
        return self.total

    def rows(self) -> tuple[Activation, ...]:
        """The graded table rows with the course's points, rules and public cases."""
        return self.activations

    def row(self, name: str) -> Activation:
        """The row of activation ``name``; KeyError when the course does not grade it."""
        for act in self.activations:
            if act.name == name:
                return act
        raise KeyError(name)

    def by_name(self) -> dict[str, Activation]:
        """The rows by class name (what ``assignment.BY_NAME`` is for the whole table)."""
        return {a.name: a for a in self.activations}

    def cases(self, visibility: str) -> tuple[CaseRow, ...]:
        """``(activation, case id, spec)`` of every graded case of one visibility, in table order.

        Hidden cases are empty where they are not available (student bundle).
        """
        if visibility == "public":
            return self.public
        if visibility == "hidden":
            return self.hidden or ()
        raise ValueError(f"unknown visibility {visibility!r}")

    def case_specs(self, name: str, visibility: str) -> tuple[tuple[str, CaseSpec], ...]:
        """``(case id, spec)`` of one activation's graded cases of one visibility."""
        return tuple((cid, spec) for act, cid, spec in self.cases(visibility) if act == name)

    def case_ids(self, visibility: str) -> frozenset[str]:
        """The ids of the graded cases of one visibility (the table's ids)."""
        return frozenset(cid for _, cid, _ in self.cases(visibility))

    # -------------------------------------------------------------- scoring

    def score(self, per_activation: Mapping[str, float]) -> float:
        """The course score from per-activation scores, under the course's credit mode."""
        return sum(self.credited(per_activation).values())

    def credited(self, per_activation: Mapping[str, float]) -> dict[str, float]:
        """Per-activation scores after the credit mode.

        ``proportional`` keeps them; ``all-or-nothing`` keeps them only when
        every activation earned all its points, and is 0 everywhere otherwise
        (CMU's section scoring: the whole section's points or none).
        """
        scores = {a.name: float(per_activation.get(a.name, 0.0)) for a in self.activations}
        if self.credit == PROPORTIONAL:
            return scores
        full = all(
            scores[a.name] >= a.max_score - POINTS_SLACK for a in self.activations if a.max_score
        )
        return scores if full else dict.fromkeys(scores, 0.0)

    def autolab_problems(self) -> tuple[str, ...]:
        """The names of the Autolab problems the score line fills."""
        if self.autolab_mode == "single":
            return (self.autolab_problem,)
        return self.names

    def autolab_scores(self, per_activation: Mapping[str, float]) -> dict[str, float]:
        """Autolab's ``scores`` object from per-activation scores (credit mode applied)."""
        credited = self.credited(per_activation)
        if self.autolab_mode == "single":
            return {self.autolab_problem: round(sum(credited.values()), 4)}
        return {name: round(credited[name], 4) for name in self.names}

    def gradebook_columns(self) -> tuple[str, ...]:
        """The gradebook's header: submission, score, max_score, then one column per activation."""
        return ("submission", "score", "max_score", *self.names)

    def test_name(self, activation: str, phase: str, visibility: str) -> str:
        """The display (and Gradescope) name of one test."""
        return self.test_name_format.format(
            activation=activation, phase=phase, visibility=visibility
        )

    def rule_test_name(self, activation: str, rule: str) -> str:
        """The display (and Gradescope) name of a rule's test."""
        return self.rule_name_format.format(activation=activation, rule=rule)

    def report_info(self) -> dict[str, Any]:
        """What a score report carries of the course, as plain data.

        Enough to render a stored report as the course scores it (credit mode,
        activation order, Autolab problem names) without the course file.
        """
        return {
            "name": self.name,
            "total": self.total,
            "credit": self.credit,
            "activations": list(self.names),
            "autolab": {"problems": self.autolab_mode, "problem": self.autolab_problem},
            "digest": self.digest(),
        }

    # -------------------------------------------------------------- as a file

    def hidden_ids_named(self) -> tuple[str, ...]:
        """The hidden case ids the course file names (in ``exclude``)."""
        return tuple(cid for cid in self.excluded if re.search(r"-h[0-9]+$", cid))

    def to_toml(self, hidden_ids: bool = True) -> str:
        """The course as a course file (without the original's comments).

        With ``hidden_ids=False`` the hidden case ids in ``exclude`` are left
        out: the file a student bundle ships, whose grader sees public cases
        only, so it grades them exactly as this course does.
        """
        lines = [
            f"# The course {_toml_str(self.name)} ({self.source}), written by the autograder.",
            "",
            "[course]",
            f"name = {_toml_str(self.name)}",
            f"title = {_toml_str(self.title)}",
            f"total = {_points_text(self.total)}",
            f"credit = {_toml_str(self.credit)}",
            f"constructor_args = {_toml_str(self.constructor_args)}",
            "",
            "[autolab]",
            f"problems = {_toml_str(self.autolab_mode)}",
        ]
        if self.autolab_mode == "single":
            lines.append(f"problem = {_toml_str(self.autolab_problem)}")
        lines += [
            "",
            "[gradescope]",
            f"test_name = {_toml_str(self.test_name_format)}",
            f"rule_name = {_toml_str(self.rule_name_format)}",
        ]
        hidden = set(self.hidden_ids_named())
        for act in self.activations:
            lines += _points_lines(act)
            kinds = [kind for name, kind in self.left_out if name == act.name]
            if kinds:
                lines.append(f"leave_out = [{', '.join(_toml_str(k) for k in kinds)}]")
            ids = [
                cid
                for cid in self.excluded
                if cid.rpartition("-")[0] == act.name and (hidden_ids or cid not in hidden)
            ]
            if ids:
                lines.append(f"exclude = [{', '.join(_toml_str(i) for i in ids)}]")
        return "\n".join(lines) + "\n"

    def student_text(self) -> str:
        """The course file a student bundle ships: the course's own text, unless it
        names a hidden case, which a student must not see (then :meth:`to_toml`
        without hidden ids)."""
        # Any hidden id in the text, even in a comment, and the file is written anew.
        if self.text and not self.hidden_ids_named() and not HIDDEN_ID.search(self.text):
            return self.text
        return self.to_toml(hidden_ids=False)

    def describe(self) -> str:
        """A few lines for ``autograder course show``: name, total, credit, classes, points."""
        lines = [
            f"course {self.name}: {self.title} ({self.source})",
            f"total {_fmt(self.total)} points, credit {self.credit}, "
            f"constructor arguments: {self.constructor_args}",
            "Autolab: "
            + (
                f"one problem, {self.autolab_problem}"
                if self.autolab_mode == "single"
                else "one problem per activation"
            ),
        ]
        width = max(len(n) for n in self.names)
        for act in self.activations:
            parts = [
                f"{phase} {_fmt(p.public)}+{_fmt(p.hidden)}" for phase, p in act.points.items()
            ]
            parts += [f"rule {r.name} {_fmt(r.points)}" for r in act.rules]
            n_public = len(self.case_specs(act.name, "public"))
            n_hidden = len(self.case_specs(act.name, "hidden"))
            cases = f"{n_public} public" + ("" if self.hidden is None else f", {n_hidden} hidden")
            lines.append(
                f"  {act.name:<{width}}  {_fmt(act.max_score):>5}  {'; '.join(parts)}  "
                f"({cases} cases)"
            )
        lines.append(f"digest {self.digest()[:16]}")
        return "\n".join(lines) + "\n"

    # -------------------------------------------------------------- identity

    def identity(self) -> dict[str, Any]:
        """Everything graded, as plain JSON data: what :meth:`digest` hashes.

        The name, title and source are left out: renaming a course or moving
        its file changes no score.
        """
        return {
            "version": DIGEST_VERSION,
            "total": self.total,
            "credit": self.credit,
            "constructor_args": self.constructor_args,
            "activations": [_row_identity(a) for a in self.activations],
            "public": [_case_identity(c) for c in self.public],
            "hidden": None if self.hidden is None else [_case_identity(c) for c in self.hidden],
            "excluded": list(self.excluded),
            "left_out": [list(x) for x in self.left_out],
            "autolab": [self.autolab_mode, self.autolab_problem],
            "names": [self.test_name_format, self.rule_name_format],
        }

    def digest(self) -> str:
        """A stable digest of everything graded (points, rules, credit, cases, names).

        For the expected-value cache key and the batch resume key: two
        courses with the same digest grade every submission the same way.
        """
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _row_identity(act: Activation) -> dict[str, Any]:
    return {
        "name": act.name,
        "points": {p: [v.public, v.hidden] for p, v in act.points.items()},
        "rules": [[r.name, list(r.names), r.points] for r in act.rules],
        "rtol": act.rtol,
        "atol": act.atol,
    }


def _case_identity(row: CaseRow) -> list[Any]:
    act, cid, spec = row
    return [act, cid, type(spec).__name__, _plain(dataclasses.asdict(spec))]


def _plain(value: Any) -> Any:
    """JSON-able data with tuples as lists and floats spelled exactly."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    return value


# ------------------------------------------------------------------ presets


def _preset_dir():
    return resources.files("autograder.course").joinpath(PRESET_DIR)


def preset_names() -> tuple[str, ...]:
    """The presets shipped with the package, sorted."""
    names = [p.name[: -len(".toml")] for p in _preset_dir().iterdir() if p.name.endswith(".toml")]
    return tuple(sorted(names))


def preset_text(name: str) -> str:
    """The TOML text of a preset (comments included): what ``course init`` writes."""
    if name not in preset_names():
        raise CourseError(_unknown_course(name))
    return _preset_dir().joinpath(name + ".toml").read_text(encoding="utf-8")


FULL_INTRO = """\
# The project's whole assignment: every activation the reference implements, with
# the points, cases and rules of autograder/course/assignment.py and hidden_cases.py, and
# every constructor argument the table exercises. The default when a repository has
# no course.toml. Generated from that table (course.full_preset_text); a copy that
# `course init full` writes is yours to edit.
"""


def _header() -> str:
    """The comments that open every preset: what each key means (from cmu-f23.toml)."""
    text = _preset_dir().joinpath("cmu-f23.toml").read_text(encoding="utf-8")
    return text[: text.index("\n\n") + 1]


def _toml_str(text: str) -> str:
    # JSON's string escapes (\", \\, \n, \uXXXX) are valid in a TOML basic string.
    return json.dumps(text)


def _points_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def full_preset_text() -> str:
    """The ``full`` preset as the table gives it: what ``presets/full.toml`` must hold.

    The table stays the one source of the project's own points; the preset file
    is its readable, editable copy (and ``course init full`` writes it).
    """
    lines = [
        _header(),
        FULL_INTRO,
        "[course]",
        'name = "full"',
        'title = "mytorch activations: the whole assignment"',
        f"total = {_points_text(assignment.MAX_SCORE)}",
        'credit = "proportional"',
        'constructor_args = "all"',
        "",
        "[autolab]",
        'problems = "per-activation"',
        "",
        "[gradescope]",
        f'test_name = "{DEFAULT_TEST_NAME}"',
        f'rule_name = "{DEFAULT_RULE_NAME}"',
    ]
    for act in assignment.ACTIVATIONS:
        lines += _points_lines(act)
    return "\n".join(lines) + "\n"


def _points_lines(act: Activation) -> list[str]:
    """An activation's table in a course file: its header, phases' points and rules."""
    lines = ["", f"[activations.{act.name}]"]
    for phase, points in act.points.items():
        lines.append(
            f"{phase} = {{ public = {_points_text(points.public)}, "
            f"hidden = {_points_text(points.hidden)} }}"
        )
    if act.rules:
        rules = ", ".join(f"{rule_key(r)} = {_points_text(r.points)}" for r in act.rules)
        lines.append(f"rules = {{ {rules} }}")
    return lines


def _unknown_course(name: str) -> str:
    presets = preset_names()
    hint = _did_you_mean(name, presets)
    return (
        f"{name}: no such preset{hint} (presets: {', '.join(presets)}; "
        "a course file is given by its path, e.g. ./course.toml)"
    )


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith(".toml") or text.startswith(".")


# ------------------------------------------------------------------ loading


def load(course: str | os.PathLike[str]) -> Course:
    """A course from a preset name (``cmu-f23``) or a TOML file's path.

    A bare name without a slash or a ``.toml`` suffix is a preset; anything
    else is a path (``./full`` is a file named ``full``).
    """
    if isinstance(course, str) and not _looks_like_path(course):
        return parse(preset_text(course), source=f"preset {course}", default_name=course)
    path = Path(course)
    label = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CourseError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise CourseError(f"{label}: is a directory, not a course file") from None
    except UnicodeDecodeError:
        raise CourseError(f"{label}: not a text file (a course file is TOML)") from None
    except OSError as exc:
        raise CourseError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    return parse(text, source=label, default_name=path.stem)


def resolve(given: str | None, project_root: str | os.PathLike[str]) -> Course:
    """The course of a command: ``--course PATH|PRESET`` if given, else the one in effect."""
    return load(given) if given else find_default(project_root)


def in_effect() -> Course:
    """The course in effect in this repository (or bundle): its course.toml, else ``full``."""
    return find_default(files.PROJECT_ROOT)


def find_default(project_root: str | os.PathLike[str]) -> Course:
    """The course in effect in a repository: its top-level ``course.toml``, else ``full``."""
    path = Path(project_root) / COURSE_FILE
    return load(path) if path.is_file() else load(DEFAULT_PRESET)


def init(preset: str, path: str | os.PathLike[str]) -> Path:
    """Write preset ``preset`` as an editable course file at ``path``; never overwrites.

    The file appears whole or not at all (written beside it, then linked
    into place, which fails if ``path`` exists meanwhile).
    """
    target = Path(path)
    text = preset_text(preset)
    if target.exists() or target.is_symlink():
        raise CourseError(f"{target.name}: already exists; not overwritten (remove it first)")
    if not target.parent.is_dir():
        raise CourseError(f"{target.name}: its folder {target.parent} does not exist")
    exists = CourseError(f"{target.name}: already exists; not overwritten (remove it first)")
    fd, tmp = tempfile.mkstemp(prefix=".course-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        try:
            os.link(tmp, target)  # fails if target exists, even if it appeared meanwhile
        except FileExistsError:
            raise exists from None
        except OSError:
            # No hard links here (some network or FUSE file systems): create exclusively.
            try:
                with open(target, "x", encoding="utf-8") as handle:
                    handle.write(text)
            except FileExistsError:
                raise exists from None
    finally:
        os.unlink(tmp)
    return target


# ------------------------------------------------------------------ parsing


def parse(text: str, source: str = COURSE_FILE, default_name: str = "course") -> Course:
    """Validate a course file's text and build the course; :class:`CourseError` if unusable."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = f"{source}: not valid TOML: {exc}"
        raise CourseError(message.replace("\n", " ")) from None
    return dataclasses.replace(_Parser(source).course(doc, default_name), text=text)


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f" (did you mean {lowered[word.lower()]}?)"
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]}?)" if close else ""


def rule_key(rule: ForbiddenNames) -> str:
    """A rule's key in a course file: its name in snake case (``no np.tanh`` -> ``no_np_tanh``)."""
    return re.sub(r"[^a-z0-9]+", "_", rule.name.lower()).strip("_")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(x: float) -> str:
    return f"{x:g}"


class _Parser:
    """Turns a parsed TOML document into a :class:`Course`, or one-line errors."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> CourseError:
        # One line, whatever a value held: newlines in a quoted value are escaped.
        line = f"{self.source}: {key}: {problem}" if key else f"{self.source}: {problem}"
        return CourseError(line.replace("\r", "\\r").replace("\n", "\\n"))

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {_toml_type(value)}")
        return value

    def known(self, table: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else key
                raise self.fail(where, "unknown key" + _did_you_mean(key, allowed))

    def string(self, table: dict[str, Any], key: str, prefix: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            raise self.fail(f"{prefix}.{key}", f"must be a string, not {_toml_type(value)}")
        return value

    def choice(
        self, table: dict[str, Any], key: str, prefix: str, choices: tuple[str, ...], default: str
    ) -> str:
        value = self.string(table, key, prefix, default)
        if value not in choices:
            raise self.fail(
                f"{prefix}.{key}",
                f"{value!r} is not one of {', '.join(choices)}" + _did_you_mean(value, choices),
            )
        return value

    def strings(self, value: Any, key: str, what: str) -> tuple[str, ...]:
        """``value`` as a list of strings, else an error saying it must be a list of ``what``."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"must be a list of {what}")
        return tuple(value)

    def points(self, value: Any, key: str) -> float:
        if not _number(value):
            raise self.fail(key, f"must be a number of points, not {_toml_type(value)}")
        if value < 0:
            raise self.fail(key, f"points cannot be negative ({_fmt(value)})")
        return float(value)

    def name_format(self, value: str, key: str, fields: tuple[str, ...]) -> str:
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise self.fail(key, f"not a valid name template ({exc})") from None
        for _, field_name, spec, conversion in parsed:
            if field_name is None:
                continue
            if field_name not in fields or spec or conversion:
                shown = "{" + field_name + "}"
                raise self.fail(
                    key,
                    f"unknown field {shown} (fields: {', '.join('{' + f + '}' for f in fields)})",
                )
        return value

    # -------------------------------------------------------------- sections

    def course(self, doc: dict[str, Any], default_name: str) -> Course:
        self.known(doc, TOP_KEYS, "")
        head = self.table(doc.get("course", {}), "course")
        self.known(head, COURSE_KEYS, "course")
        if "total" not in head:
            raise self.fail("course.total", "missing: the course's total points (e.g. 10)")
        total = self.points(head["total"], "course.total")
        if total <= 0:
            raise self.fail("course.total", "must be more than 0")
        credit = self.choice(head, "credit", "course", CREDIT_MODES, "proportional")
        kwargs_mode = self.choice(head, "constructor_args", "course", CONSTRUCTOR_ARGS, "all")

        autolab = self.table(doc.get("autolab", {}), "autolab")
        self.known(autolab, AUTOLAB_KEYS, "autolab")
        autolab_mode = self.choice(autolab, "problems", "autolab", AUTOLAB_MODES, "per-activation")
        problem = self.string(autolab, "problem", "autolab", "Activation")
        if "problem" in autolab and autolab_mode != "single":
            raise self.fail("autolab.problem", 'only used with problems = "single"')
        if not problem.strip():
            raise self.fail("autolab.problem", "must not be empty")

        gradescope = self.table(doc.get("gradescope", {}), "gradescope")
        self.known(gradescope, GRADESCOPE_KEYS, "gradescope")
        test_name = self.name_format(
            self.string(gradescope, "test_name", "gradescope", DEFAULT_TEST_NAME),
            "gradescope.test_name",
            TEST_NAME_FIELDS,
        )
        rule_name = self.name_format(
            self.string(gradescope, "rule_name", "gradescope", DEFAULT_RULE_NAME),
            "gradescope.rule_name",
            RULE_NAME_FIELDS,
        )

        if "activations" not in doc:
            raise self.fail("activations", "missing: which activations are graded")
        acts = self.table(doc["activations"], "activations")
        if not acts:
            raise self.fail("activations", "no activation is graded")
        reference_classes = _reference_classes()
        for name in acts:
            if name not in assignment.BY_NAME:
                raise self.fail(
                    f"activations.{name}",
                    "no such class" + _did_you_mean(name, list(assignment.BY_NAME)),
                )
            if reference_classes is not None and name not in reference_classes:
                raise self.fail(f"activations.{name}", "the reference has no class of that name")

        hidden_table = _hidden_table()
        rows: list[Activation] = []
        public: list[CaseRow] = []
        hidden: list[CaseRow] | None = None if hidden_table is None else []
        excluded: list[str] = []
        left_out: list[tuple[str, str]] = []
        # Table order, whatever the file's order.
        for base in assignment.ACTIVATIONS:
            if base.name not in acts:
                continue
            prefix = f"activations.{base.name}"
            entry = self.table(acts[base.name], prefix)
            row, drop, kinds = self.activation(base, entry, prefix)
            pub = _select(base.name, "public", base.public, kwargs_mode, drop, kinds)
            hid = None
            if hidden_table is not None:
                hid = _select(
                    base.name, "hidden", hidden_table.get(base.name, ()), kwargs_mode, drop, kinds
                )
            self.check_cases(row, pub, hid, prefix, kwargs_mode)
            # Only graded cases: none of a visibility whose tests have no points (the
            # public ones stay for a rule, judged once forward passes a public case).
            if not _graded(row, "public") and not row.rules:
                pub = []
            if hid is not None and not _graded(row, "hidden"):
                hid = []
            rows.append(dataclasses.replace(row, public=tuple(spec for _, _, spec in pub)))
            public.extend(pub)
            if hidden is not None and hid is not None:
                hidden.extend(hid)
            excluded.extend(drop)
            left_out.extend((base.name, kind) for kind in kinds)

        added = sum(a.max_score for a in rows)
        if abs(added - total) > POINTS_SLACK * max(1.0, total):
            raise self.fail(
                "course.total",
                f"the activations' points add up to {_fmt(added)}, not {_fmt(total)}",
            )
        name = self.string(head, "name", "course", default_name)
        title = self.string(head, "title", "course", name)
        return Course(
            name=name,
            title=title,
            source=self.source,
            total=total,
            credit=credit,
            constructor_args=kwargs_mode,
            activations=tuple(rows),
            public=tuple(public),
            hidden=None if hidden is None else tuple(hidden),
            excluded=tuple(excluded),
            left_out=tuple(left_out),
            autolab_mode=autolab_mode,
            autolab_problem=problem,
            test_name_format=test_name,
            rule_name_format=rule_name,
        )

    def activation(
        self, base: Activation, entry: dict[str, Any], prefix: str
    ) -> tuple[Activation, tuple[str, ...], tuple[str, ...]]:
        phases = tuple(base.points)
        for key in entry:
            if key in assignment.PHASES and key not in phases:
                raise self.fail(
                    f"{prefix}.{key}",
                    f"{base.name} has no phase {key} (its phases: {', '.join(phases)})",
                )
        self.known(entry, (*phases, *ACTIVATION_EXTRA_KEYS), prefix)
        points: dict[str, Points] = {}
        for phase in phases:
            if phase not in entry:
                continue
            key = f"{prefix}.{phase}"
            split = self.table(entry[phase], key)
            self.known(split, assignment.VISIBILITIES, key)
            points[phase] = Points(
                public=self.points(split.get("public", 0), f"{key}.public"),
                hidden=self.points(split.get("hidden", 0), f"{key}.hidden"),
            )
        if not any(p.public + p.hidden > 0 for p in points.values()):
            raise self.fail(
                prefix, f"no phase has points (give at least one of: {', '.join(phases)})"
            )

        rules: list[ForbiddenNames] = []
        by_key = {rule_key(r): r for r in base.rules}
        if "rules" in entry:
            chosen = self.table(entry["rules"], f"{prefix}.rules")
            if not by_key and chosen:
                first = next(iter(chosen))
                raise self.fail(f"{prefix}.rules.{first}", f"{base.name} has no rules")
            self.known(chosen, tuple(by_key), f"{prefix}.rules")
            for key in by_key:  # table order
                if key in chosen:
                    value = self.points(chosen[key], f"{prefix}.rules.{key}")
                    rules.append(dataclasses.replace(by_key[key], points=value))

        drop: tuple[str, ...] = ()
        if "exclude" in entry:
            key = f"{prefix}.exclude"
            drop = self.strings(entry["exclude"], key, 'case ids, e.g. ["Tanh-p4"]')
            self.check_exclusions(base, drop, key)
        kinds: tuple[str, ...] = ()
        if "leave_out" in entry:
            key = f"{prefix}.leave_out"
            kinds = self.strings(entry["leave_out"], key, 'kinds of case, e.g. ["large |Z|"]')
            # Checked on the public cases alone, so a student bundle validates the same.
            notes = [spec.note for spec in base.public if spec.note]
            for kind in kinds:
                if kind not in notes:
                    raise self.fail(
                        key,
                        f"no public case of {base.name} is noted {kind!r}"
                        + _did_you_mean(kind, notes)
                        + f" (notes: {', '.join(dict.fromkeys(notes)) or 'none'})",
                    )
        return dataclasses.replace(base, points=points, rules=tuple(rules)), drop, kinds

    def check_exclusions(self, base: Activation, drop: tuple[str, ...], key: str) -> None:
        hidden_table = _hidden_table()
        counts = {"p": len(base.public)}
        if hidden_table is not None:
            counts["h"] = len(hidden_table.get(base.name, ()))
        for cid in drop:
            match = re.fullmatch(re.escape(base.name) + r"-([ph])([1-9][0-9]*)", cid)
            if match is None:
                raise self.fail(
                    key,
                    f"{cid!r} is not a case id of {base.name} "
                    f"(ids look like {base.name}-p1 or {base.name}-h2)",
                )
            kind, index = match.group(1), int(match.group(2))
            if kind in counts and index > counts[kind]:
                which = "public" if kind == "p" else "hidden"
                raise self.fail(
                    key,
                    f"no case {cid} ({base.name} has {counts[kind]} {which} cases: "
                    f"{base.name}-{kind}1 to {base.name}-{kind}{counts[kind]})",
                )
        if len(set(drop)) != len(drop):
            raise self.fail(key, "a case is listed twice")

    def check_cases(
        self,
        row: Activation,
        public: list[CaseRow],
        hidden: list[CaseRow] | None,
        prefix: str,
        kwargs_mode: str,
    ) -> None:
        why = "after constructor_args, exclude and leave_out"
        for visibility, cases in (("public", public), ("hidden", hidden)):
            if cases is None:
                continue  # hidden cases not available here: nothing to check
            if _graded(row, visibility) and not cases:
                raise self.fail(
                    prefix,
                    f"{visibility} tests have points but no {visibility} case is left ({why})",
                )
        if row.rules and not public:
            raise self.fail(f"{prefix}.rules", "a rule is judged on public cases, and none is left")


def _graded(row: Activation, visibility: str) -> bool:
    return any(row.test_points(phase, visibility) > 0 for phase in row.points)


def _select(
    name: str,
    visibility: str,
    specs: tuple[CaseSpec, ...],
    kwargs_mode: str,
    drop: tuple[str, ...],
    kinds: tuple[str, ...],
) -> list[CaseRow]:
    rows = []
    for index, spec in enumerate(specs, start=1):
        cid = f"{name}-{visibility[0]}{index}"
        if cid in drop or (spec.note and spec.note in kinds):
            continue
        if kwargs_mode == "defaults" and spec.kwargs:
            continue
        rows.append((name, cid, spec))
    return rows


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _hidden_table() -> dict[str, tuple[CaseSpec, ...]] | None:
    """The hidden rows of the table, or None in a student bundle (module absent)."""
    try:
        from autograder.course.hidden_cases import HIDDEN
    except ImportError:
        return None
    return HIDDEN


def _reference_classes() -> set[str] | None:
    """Class names the reference defines (read with ``ast``, never imported), or None without it."""
    path = files.reference_path()
    if path is None:
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None  # a broken reference is reported where it is imported
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
