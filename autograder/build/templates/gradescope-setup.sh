#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image
# (the zip's contents are in /autograder/source). Choose the Ubuntu 24.04 base
# image in the autograder settings: it has Python 3.12 (3.11+ is needed).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
# bubblewrap: the strongest sandbox for student code, used when the container allows it.
apt-get install -y -qq python3 python3-venv python3-pip bubblewrap >/dev/null

PYTHON=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        PYTHON="$candidate"
        break
    fi
done
if [ -z "$PYTHON" ]; then
    apt-get install -y -qq python3.11 python3.11-venv >/dev/null || true
    command -v python3.11 >/dev/null 2>&1 && PYTHON=python3.11
fi
if [ -z "$PYTHON" ]; then
    echo "setup.sh: Python 3.11 or newer is needed; choose the Ubuntu 24.04 base image" >&2
    exit 1
fi

# A virtual environment: the system Python refuses pip installs (PEP 668).
"$PYTHON" -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r /autograder/source/requirements.txt
/autograder/venv/bin/python -c 'import numpy, scipy, pytest, pytest_jsonreport, nbformat'
# Student code runs as another user and imports the Python runtime from this venv.
chmod -R go+rX /autograder/venv
