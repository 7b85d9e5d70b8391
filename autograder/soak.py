"""Grade the reference submission of every assignment many times, two at a time, and require the same score for every
test each time: grading must not depend on timing, load or chance.

    python -m autograder.soak [NAME ...] [--runs 20] [--jobs 2] [--python PATH]

Each run grades `build/NAME/reference/NAME-reference.zip` (made by `make release`) through `autograder.grade.grade`,
the path a student's submission takes, in a pool of `--jobs` worker processes; the runs of all assignments are
interleaved, so two gradings (of the same or of different assignments) always share the machine. `make soak` grades
with the interpreter of `make gradescope-env`, as Gradescope would.

One row per assignment: runs, distinct per-test score vectors (1 means every run gave every test the same score),
the score, and the fastest and slowest grading in seconds. Where runs differ, the tests that differ are listed
with the output of a run that lost points. Each grading runs in the emulation of Gradescope's container where this
machine allows it (768 MB and 0.5 CPU, autograder/container.py). Exits non-zero unless every assignment has a single score vector and
that vector is full marks.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed

from autograder.assignments import ASSIGNMENTS, BUILD


def reference_submission(name: str):
    return BUILD / name / "reference" / f"{name}-reference.zip"


def grade_once(name: str, run: int, python: str | None) -> dict:
    """One grading of the reference of `name`: its per-test scores, outputs and seconds (in a worker process)."""
    from autograder.container import GRADESCOPE
    from autograder.grade import grade

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"soak-{name}-{run}-") as out:
        results = grade(reference_submission(name), ASSIGNMENTS[name], out_dir=out, quiet=True, python=python,
                        container=GRADESCOPE)
    tests = results.get("tests", [])
    return {"name": name, "run": run, "seconds": time.monotonic() - start,
            "scores": tuple((t.get("name", "?"), t.get("score"), t.get("max_score")) for t in tests),
            "outputs": {t.get("name", "?"): t.get("output", "") for t in tests}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="assignments (default: all)")
    parser.add_argument("--runs", type=int, default=20, help="gradings per assignment (default 20)")
    parser.add_argument("--jobs", type=int, default=2, help="gradings at a time (default 2)")
    parser.add_argument("--python", help="interpreter that grades (default: this one); see `make gradescope-env`")
    args = parser.parse_args(argv)

    names = args.names or list(ASSIGNMENTS)
    missing = [n for n in names if not reference_submission(n).exists()]
    if missing:
        print(f"no reference submission for {', '.join(missing)}: run `make release` first")
        return 2
    tasks = [(name, run) for run in range(args.runs) for name in names]  # interleaved: mixed load
    runs: dict[str, list[dict]] = defaultdict(list)
    start = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(grade_once, name, run, args.python) for name, run in tasks]
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            runs[result["name"]].append(result)
            print(f"  {done}/{len(tasks)} gradings, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)

    ok = True
    print(f"{'assignment':<20} {'runs':>5} {'distinct':>9} {'score':>11} {'min_s':>7} {'max_s':>7}")
    for name in names:
        results = runs[name]
        vectors = defaultdict(list)
        for result in results:
            vectors[result["scores"]].append(result)
        seconds = [r["seconds"] for r in results]
        ordered = sorted(vectors.items(), key=lambda item: -len(item[1]))  # the most common vector first
        common = ordered[0][0]
        score, total = sum(s or 0 for _, s, _ in common), sum(m or 0 for _, _, m in common)
        print(f"{name:<20} {len(results):>5} {len(vectors):>9} {f'{score:g}/{total:g}':>11} "
              f"{min(seconds):>7.1f} {max(seconds):>7.1f}")
        if len(vectors) > 1:  # the tests whose score differs from the most common vector's
            ok = False
            expected = {test: s for test, s, _ in common}
            for vector, members in ordered[1:]:
                for test, s, m in vector:
                    if expected.get(test) != s:
                        output = members[0]["outputs"].get(test, "").strip().replace("\n", " ")[:300]
                        print(f"    {test}: {s}/{m} in {len(members)} run(s), {expected.get(test)} otherwise: {output}")
        elif score != total:
            ok = False
            for test, s, m in common:
                if s != m:
                    output = ordered[0][1][0]["outputs"].get(test, "").strip().replace("\n", " ")[:300]
                    print(f"    {test}: {s}/{m} in every run: {output}")
    print(f"({len(tasks)} gradings, {args.jobs} at a time, {time.monotonic() - start:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
