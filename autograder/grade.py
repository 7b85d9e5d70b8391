"""Grade submissions exactly as Gradescope would, with a time limit and a results.json in every case.

    python -m autograder.grade SUBMISSION [--assignment NAME] [--out DIR] [--timeout S]
    python -m autograder.grade --all FOLDER [--out DIR]

A submission is a notebook or the zip the notebook's export cell makes. The grader runs
otter with the assignment's autograder zip in a separate process group under a time limit.
Grading runs the way Gradescope runs it: the autograder zip is unpacked into `source/`, the submission
into `submission/`, and the zip's own `run_otter.py` runs (pointed at this temporary root instead of
/autograder), so the course library, the plugin and the data come from the zip, not from this repository.
`--python` chooses the interpreter: `make gradescope-env` builds one from the zip's requirements only,
as Gradescope's image does.
If otter produces no results (timeout, crashed kernel, malformed notebook) a results.json is still
written, with one entry per question and a message saying what happened. Next to results.json,
summary.txt shows the per-question scores; the last line printed is `score: X / Y`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from autograder.assignments import ASSIGNMENTS, Assignment, find

DEFAULT_TIMEOUT_S = 600  # Gradescope's default limit


def question_points(assignment: Assignment) -> dict[str, float]:
    """Points per question, read from the test files inside the autograder zip."""
    from otter.test_files import ExceptionTestFile

    points = {}
    with zipfile.ZipFile(assignment.zip_path) as zf:
        for name in sorted(zf.namelist()):
            if name.startswith("tests/") and name.endswith(".py"):
                test_file = ExceptionTestFile.from_string(zf.read(name).decode(), name)
                points[test_file.name] = sum(tc.points for tc in test_file.test_cases)
    return points


def _fallback_results(assignment: Assignment, message: str) -> dict:
    return {
        "score": 0.0,
        "output": message,
        "tests": [{"name": q, "score": 0.0, "max_score": p, "visibility": "visible", "output": message}
                  for q, p in question_points(assignment).items()],
    }


def _explain_failure(log: str) -> str:
    """A message a student can act on, from the end of otter's output."""
    if "DeadKernelError" in log or "Kernel died" in log:
        return ("The notebook's kernel died while it was graded (a call such as os._exit, a crash in native code, "
                "or running out of memory). No question could be graded: remove the cell that ends the kernel.")
    wrong = re.search(r"for assignment '([^']+)' \(this is assignment '([^']+)'\)", log) or re.search(
        r"This notebook is for assignment '([^']+)', not '([^']+)'", log)
    if wrong:
        return f"This notebook is for assignment '{wrong.group(1)}', not '{wrong.group(2)}': submit the {wrong.group(2)} notebook."
    if "No gradable files found" in log:
        return "The submission contains no notebook of this assignment: submit the zip made by the export cell."
    return ("The autograder could not run this submission (is it a notebook of this assignment, saved without errors?). "
            f"Last output:\n{log[-1500:]}")


def gradescope_layout(root: Path, assignment: Assignment, submission: Path) -> list[str]:
    """Lay out `root` as Gradescope's /autograder (source/, submission/, results/); returns the command that grades.

    A zip (the export cell's) is unpacked into submission/, as `otter run` does; a notebook is copied there with
    the student's files found beside it. The command is the zip's own run_otter.py with its /autograder path
    replaced by `root`: run as a script, it puts source/ first on sys.path, which is how the plugin and the course
    library in the zip are found.
    """
    for sub in ("source", "submission", "results"):
        (root / sub).mkdir(parents=True)
    (root / "submission_metadata.json").write_text("{}")
    with zipfile.ZipFile(assignment.zip_path) as zf:
        zf.extractall(root / "source")
    if submission.suffix == ".zip":
        with zipfile.ZipFile(submission) as zf:
            zf.extractall(root / "submission")
    else:
        shutil.copy(submission, root / "submission" / f"{assignment.name}.ipynb")
        for extra in assignment.student_files:
            if (submission.parent / extra).exists():
                shutil.copy(submission.parent / extra, root / "submission" / extra)
    script = root / "source" / "run_otter.py"
    text = script.read_text()
    if '"/autograder"' not in text:
        raise RuntimeError(f"{assignment.zip_path}: run_otter.py does not grade /autograder; has otter changed?")
    script.write_text(text.replace('"/autograder"', repr(str(root))))
    return [str(script)]


def _run_grader(command: list[str], root: Path, log_path: Path, assignment: Assignment, timeout_s: float) -> dict:
    """Run otter on the laid-out root under a time limit; results.json's content, or a fallback that explains."""
    # an empty Jupyter user folder: the kernel named python3 is the one of the grading interpreter, as in the image
    env = dict(os.environ, COURSE_GRADING="1", PYTHONUNBUFFERED="1", JUPYTER_DATA_DIR=str(root.parent / "jupyter"))
    env.pop("PYTHONPATH", None)
    message = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel runs in the same process group
            proc.wait()
            message = (f"Grading stopped after {timeout_s:.0f} s: some cell runs too long or never ends. "
                       "Check for infinite loops and make sure training cells are not needed to define your functions.")
    if message is not None:
        return _fallback_results(assignment, message)
    produced = root / "results" / "results.json"
    results = json.loads(produced.read_text()) if produced.exists() else {"tests": []}
    if any("score" in test for test in results["tests"]):
        return results
    # no results, or otter stopped before grading (its "Autograder Error" entry): say why, one zero per question
    otter_said = "\n".join(test.get("output", "") for test in results["tests"])
    return _fallback_results(assignment, _explain_failure(log_path.read_text(errors="replace") + "\n" + otter_said))


def grade(submission, assignment: Assignment | None = None, out_dir=None, timeout_s: float = DEFAULT_TIMEOUT_S,
          quiet: bool = False, python: str | None = None) -> dict:
    """Grade one submission; returns the Gradescope results dict (also written to out_dir/results.json)."""
    submission = Path(submission).resolve()
    assignment = assignment or find(submission.name)
    out_dir = Path(out_dir or submission.parent / f"{submission.stem}-graded").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not assignment.zip_path.exists():
        raise FileNotFoundError(f"{assignment.zip_path} is missing: run `make release` first.")
    results_path = out_dir / "results.json"
    results_path.unlink(missing_ok=True)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        os.chmod(tmp, 0o755)  # when grading runs as root the notebook runs as another user, who must reach the layout
        if not submission.exists():
            results = _fallback_results(assignment, f"Submission {submission.name} not found.")
        else:
            root = Path(tmp) / "autograder"
            try:
                command = gradescope_layout(root, assignment, submission)
            except zipfile.BadZipFile:
                results = _fallback_results(assignment, f"{submission.name} is not a readable zip file: submit the zip made by the export cell.")
            else:
                results = _run_grader([str(Path(python).absolute()) if python else sys.executable, *command], root, out_dir / "grading.log", assignment, timeout_s)
    results.setdefault("execution_time", round(time.time() - start, 1))
    results_path.write_text(json.dumps(results, indent=2))
    score, total = summarize(results, out_dir / "summary.txt", assignment)
    if not quiet:
        print((out_dir / "summary.txt").read_text())
        print(f"score: {score:g} / {total:g}")
    return results


def per_question(results: dict) -> dict[str, tuple[float, float]]:
    """(score, max) per question; otter reports public and hidden parts of a question separately."""
    scores: dict[str, list[float]] = {}
    for test in results.get("tests", []):
        if "score" not in test:
            continue
        question = test["name"].split(" - ")[0]
        entry = scores.setdefault(question, [0.0, 0.0])
        entry[0] += float(test.get("score") or 0)
        entry[1] += float(test.get("max_score") or 0)
    return {q: (s, m) for q, (s, m) in scores.items()}


def summarize(results: dict, path: Path, assignment: Assignment) -> tuple[float, float]:
    lines = [f"{assignment.name}: {assignment.title}", ""]
    if results.get("output"):
        lines += [results["output"].strip(), ""]
    for test in results.get("tests", []):
        if "score" not in test:  # otter's "Public Tests" summary entry carries no points
            continue
        mark = "PASS" if test.get("score", 0) >= test.get("max_score", 0) else "FAIL"
        lines.append(f"{mark}  {test['name']:<40} {float(test.get('score') or 0):g} / {float(test.get('max_score') or 0):g}")
        output = (test.get("output") or "").strip()
        if mark == "FAIL" and output:
            lines.extend("      " + line for line in output.splitlines()[-6:])
    score = sum(s for s, _ in per_question(results).values())
    total = sum(m for _, m in per_question(results).values())
    lines += ["", f"total: {score:g} / {total:g}"]
    path.write_text("\n".join(lines) + "\n")
    return score, total


def grade_all(folder, out_dir=None, assignment: Assignment | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
              python: str | None = None) -> Path:
    """Grade every notebook/zip in `folder` (one per student); one bad submission never stops the rest."""
    folder = Path(folder)
    out_dir = Path(out_dir or folder / "graded")
    submissions = sorted(p for p in folder.iterdir() if p.suffix in (".ipynb", ".zip"))
    rows, questions = [], []
    for i, sub in enumerate(submissions, 1):
        print(f"[{i}/{len(submissions)}] {sub.name}", flush=True)
        try:
            results = grade(sub, assignment, out_dir / sub.stem, timeout_s, quiet=True, python=python)
            scores = per_question(results)
            error = ""
        except Exception as exc:  # noqa: BLE001 - recorded in the CSV, the loop goes on
            scores, error = {}, f"{type(exc).__name__}: {exc}"
        for q in scores:
            if q not in questions:
                questions.append(q)
        rows.append((sub.name, scores, error))
        print(f"    {sum(s for s, _ in scores.values()):g} / {sum(m for _, m in scores.values()):g} {error}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "scores.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", *questions, "total", "max", "error"])
        for name, scores, error in rows:
            writer.writerow([name, *[scores.get(q, (0, 0))[0] for q in questions],
                             sum(s for s, _ in scores.values()), sum(m for _, m in scores.values()), error])
    print(f"wrote {csv_path}")
    return csv_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", nargs="?", help="a notebook or export zip")
    parser.add_argument("--all", metavar="FOLDER", help="grade every submission in FOLDER and write scores.csv")
    parser.add_argument("--assignment", choices=sorted(ASSIGNMENTS), help="default: from the file name")
    parser.add_argument("--out", help="output folder (default: beside the submission)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before grading is stopped")
    parser.add_argument("--python", help="interpreter that grades (default: this one); see `make gradescope-env`")
    args = parser.parse_args(argv)
    assignment = ASSIGNMENTS[args.assignment] if args.assignment else None
    if args.all:
        grade_all(args.all, args.out, assignment, args.timeout, args.python)
    elif args.submission:
        grade(args.submission, assignment, args.out, args.timeout, python=args.python)
    else:
        parser.error("give a SUBMISSION or --all FOLDER")


if __name__ == "__main__":
    main()
