"""The worker: the only code that runs in a process with student code.

Read these files to review the whole trust boundary:

* ``frames.py``: the frame codec, the only format crossing between grader and
  worker (JSON header plus raw arrays of allow-listed dtypes; no pickle);
* ``child.py``: the forked child that isolates itself, imports the student's
  module and runs the cases;
* ``zygote.py``: imports numpy once, forks the children, kills and removes
  everything a child leaves;
* ``linux.py``, ``proctree.py``, ``cleanup.py``: process controls, process-tree
  walks, and removing what a child left (files, processes of its uid);
* ``syscall_filter.py``, ``landlock.py``: the seccomp filter and the Landlock
  ruleset the child installs before it imports student code.

This folder imports nothing else of the package (the sandbox mounts it
alone), and importing it runs no code: the grader starts the zygote with
:data:`BOOTSTRAP`, which loads this folder under a private name.
"""

# The zygote's ``python -I -c`` program: load this folder, wherever it is mounted,
# as the package ``_autograder_worker`` (argv[1] is its path) and serve on the
# descriptor named after ``--zygote``. No directory is added to sys.path, so
# student code cannot import the worker's modules by name.
BOOTSTRAP = (
    "import importlib.util, sys\n"
    "d = sys.argv[1]\n"
    "spec = importlib.util.spec_from_file_location("
    "'_autograder_worker', d + '/__init__.py', submodule_search_locations=[d])\n"
    "m = importlib.util.module_from_spec(spec)\n"
    "sys.modules['_autograder_worker'] = m\n"
    "spec.loader.exec_module(m)\n"
    "from _autograder_worker.zygote import main\n"
    "main(sys.argv)\n"
)
