import os
import sys
from pathlib import Path

# name the data mirror (as the Makefile does) for graded kernels: they run the copy of the course library
# inside the autograder zip, which cannot find the mirror from its own location
from course.data import DATA_DIR_ENV, find_data_dir  # noqa: E402

# this machine is disposable: when the tests grade as root, the grader may open the interpreter's folders (o+x) to
# the unprivileged user that runs the notebook, as it does in Gradescope's container (see autograder/sandbox/users.py)
os.environ.setdefault("COURSE_GRANT_KERNEL_ACCESS", "1")

# COURSE_QUICK=1 left in the shell (a student-path habit) would shorten the training the tests measure
os.environ.pop("COURSE_QUICK", None)

_MIRROR = find_data_dir()
if _MIRROR is not None:
    os.environ.setdefault(DATA_DIR_ENV, str(_MIRROR))

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def reference_zip():
    """Assignment 1's autograder zip and its reference submission (trains the reference: about 30 s on
    CPU, cached in build/ until the master or the course library changes)."""
    from autograder.assignments import ASSIGNMENTS
    from autograder.build import copy_autograder_zip, otter_assign, run_reference

    a1 = ASSIGNMENTS["a1_tfidf"]
    dist = otter_assign(a1)
    copy_autograder_zip(a1, dist)
    return run_reference(a1, dist)
