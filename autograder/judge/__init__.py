"""Deciding what a run's outputs are worth.

* ``compare.py``: the tolerance and the comparison of one array with another;
* ``checks.py`` (with ``checks.ini``): the graded tests, run by pytest or
  directly, turning outputs into test results and report entries;
* ``rules.py``: rules on the source (e.g. no ``np.tanh``);
* ``feedback.py``: the words a student reads about a failure, and the probe
  phase that feeds them;
* ``mistakes.py``: the catalogue of known mistakes (instructor side only).

May import :mod:`autograder.report`, :mod:`autograder.isolation` (for the
outputs record only), :mod:`autograder.course` and below; never the engine.
"""
