"""Making what instructors hand out and upload.

* ``stubs.py``: the student stubs cut from the reference's solution markers;
* ``handout.py``: the generated files (stubs, public case data, plot data, notebook);
* ``notebook_build.py``: the handout notebook;
* ``bundles.py`` with ``templates/``: the student, Gradescope and Autolab bundles.

May import the engine and everything below it; nothing imports this folder
but the command line.
"""
