"""Reading a handin: a folder, a file, an archive or a notebook, into files in memory.

* ``handin.py``: what a submission is and how it is loaded;
* ``archive.py``: the strict, bounded reader of tar and zip handins;
* ``open_file.py``: the one way a submitted file is opened (no link, no FIFO, a size cap);
* ``notebook_source.py``: a notebook (or a kernel's cells) to the module graded.

The layering would let it import :mod:`autograder.course` and
:mod:`autograder.files`; it needs neither, and it never imports
:mod:`autograder.isolation` or anything above.
"""
