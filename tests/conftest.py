import os
import sys
from pathlib import Path

# as the Makefile does: the data mirror beside the checkout, when there is one. Graded kernels run a copy of
# the course library from the autograder zip, which cannot find the mirror by its own location.
_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"
if (_MIRROR / "imdb" / "train.parquet").exists():
    os.environ.setdefault("COURSE_DATA_DIR", str(_MIRROR))

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
