"""The assignment as data: what is graded, on which cases, against which values.

* ``assignment.py``: the table of activations (points, cases, rules), frozen rows;
* ``hidden_cases.py``: the hidden rows (instructor side only; never shipped to students);
* ``course_file.py``: a semester's selection from the table (``course.toml``, presets);
* ``cases.py``: the cases built from the table, and the case data files;
* ``reference.py``: the reference implementation's outputs on the cases;
* ``presets/`` and ``data/``: the shipped course presets and generated case data.

The lowest layer above :mod:`autograder.files`: it imports nothing else of the package.
"""
