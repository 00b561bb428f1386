"""The report and everything that draws it.

* ``record.py``: the report record (statuses, entries, JSON);
* ``render.py``: the terminal table, JSON, JUnit and Gradescope/Autolab views;
* ``report_html.py``, ``summary.py``: one report as HTML, and the class summary;
* ``plots.py``: pictures of a failing activation from outputs grading produced;
* ``escape.py``: making student text safe to print.

Rendering a stored report imports neither pytest nor the checks: this folder
may import only :mod:`autograder.course` and :mod:`autograder.files` below it.
"""
