"""Draw docs/progression.png: test accuracy on the 25,000 IMDB test reviews of every classifier of the course.

The figures are `course.plotting.COURSE_TEST_ACCURACY` (measured; where they come from is written beside them), so
the README's chart and the one in assignment 5's notebook are the same.

    PYTHONPATH=shared python docs/progression.py
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course import plotting  # noqa: E402

ax = plotting.progression()
plt.tight_layout()
out = Path(__file__).with_name("progression.png")
plt.savefig(out, dpi=110)
print(f"wrote {out}")
