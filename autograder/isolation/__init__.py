"""Running student code where it can do no harm.

* ``worker/``: the only code that runs beside student code (frame codec,
  zygote, child, process controls, seccomp and Landlock); it imports nothing
  outside its own folder;
* ``runner.py``: the grader side of the worker (start the zygote, send cases,
  read outputs, enforce time limits);
* ``sandbox.py``: the isolation levels (bwrap, uid, process) and how one is launched;
* ``uids.py``, ``cgroups.py``: a private uid and a cgroup for each run;
* ``protected.py``: the instructor files student code must not reach (the self-check);
* ``outputs.py``: what a run produced, as plain data.

May import :mod:`autograder.submission`, :mod:`autograder.course` and
:mod:`autograder.files`; nothing that judges or reports.
"""
