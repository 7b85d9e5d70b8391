"""Grade submissions exactly as Gradescope does, with a time limit and a results.json in every case.

    python -m autograder.grade SUBMISSION [--assignment NAME] [--out DIR] [--timeout S] [--python PATH]
    python -m autograder.grade --all FOLDER [--out DIR] [--jobs N]     (autograder/cohort.py: a whole cohort)

A submission is a notebook (with the student's files beside it) or the zip the notebook's export cell makes.
Grading here is what Gradescope runs, byte for byte: the assignment's autograder zip is unpacked into `source/` of a
temporary folder laid out like Gradescope's /autograder, the submission into `submission/`, and the zip's own
`run_autograder` runs (the course's grading supervisor, autograder/sandbox), which writes `results/results.json`.
This module only lays the folder out, runs that file under an outer time limit (Gradescope's 600 s), and reads the
results. `--python` chooses the interpreter the zip runs with: `make gradescope-env` builds one from the zip's
requirements only, as Gradescope's image does. Each grading runs in an emulation of Gradescope's container where
this machine allows it (autograder/container.py: a memory cgroup of 768 MB, memory and swap, and a CPU quota of 0.5;
root only); `--container memory` keeps the memory limit only, `--container none` neither; run.json records what
was enforced. Next to results.json, summary.txt shows the per-question scores and
grading.log what the grader logged; the last line printed is `score: X / Y`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from autograder import container as containers
from autograder.assignments import ASSIGNMENTS, Assignment, find
from autograder.sandbox.limits import descendants, processes_of_user
from autograder.sandbox.processes import become_subreaper, is_zombie, kill_tree

DEFAULT_TIMEOUT_S = 600  # Gradescope's default limit


def question_points(assignment: Assignment) -> dict[str, float]:
    """Points per question, from the grading.json inside the autograder zip."""
    with zipfile.ZipFile(assignment.zip_path) as zf:
        manifest = json.loads(zf.read("grading.json"))
    return {q["name"]: sum(case["points"] for case in q["cases"]) for q in manifest["questions"]}


def _fallback_results(assignment: Assignment, message: str) -> dict:
    return {
        "score": 0.0,
        "output": message,
        "tests": [{"name": q, "score": 0.0, "max_score": p, "visibility": "visible", "output": message}
                  for q, p in question_points(assignment).items()],
    }


def gradescope_layout(root: Path, assignment: Assignment, submission: Path) -> Path:
    """Lay out `root` as Gradescope's /autograder; returns the run_autograder to run.

    source/ holds the zip, and run_autograder is copied beside it, as Gradescope does; a submission zip (the export
    cell's) is unpacked into submission/ as Gradescope unpacks an uploaded zip, a notebook is copied there with the
    student's files found beside it.
    """
    for sub in ("source", "submission", "results"):
        (root / sub).mkdir(parents=True)
    (root / "submission_metadata.json").write_text("{}")
    with zipfile.ZipFile(assignment.zip_path) as zf:
        zf.extractall(root / "source")
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    if submission.suffix == ".zip":
        _unzip(submission, root / "submission")
    else:
        shutil.copy(submission, root / "submission" / f"{assignment.name}.ipynb")
        for extra in assignment.student_files:
            if (submission.parent / extra).exists():
                shutil.copy(submission.parent / extra, root / "submission" / extra)
    return root / "run_autograder"


def _unzip(path: Path, target: Path) -> None:
    """Unpack a submission zip as Gradescope does, however deep its folders (zipfile's own extraction creates them
    recursively, and a path of 1,000 folders is beyond Python's recursion limit)."""
    with zipfile.ZipFile(path) as zf:
        for member in zf.infolist():
            parts = [part for part in member.filename.split("/") if part not in ("", ".", "..")]
            folder = target
            for part in parts[:-1] if not member.is_dir() else parts:
                folder = folder / part
                if not folder.is_dir():
                    folder.mkdir()
            if not member.is_dir() and parts:
                zf.extract(member, target)


@dataclasses.dataclass
class ZipRun:
    """What running the zip's entry point gave: its results.json (None if it wrote none), and how it ended."""
    results: dict | None
    wall_s: float
    timed_out: bool
    left: list[int]  # processes of this grading still alive after it (there must be none)
    container: dict = dataclasses.field(default_factory=dict)  # what of Gradescope's container was enforced


_RUNNING: set[int] = set()  # the run_autograder processes of the gradings this process runs now (grade-all's threads)
_RUNNING_LOCK = threading.Lock()
_ADOPTING = [0]  # how many gradings need this process to be a child subreaper (it is one while any does)


def _adopt_orphans(more: int) -> None:
    with _RUNNING_LOCK:
        _ADOPTING[0] += more
        if _ADOPTING[0] == (1 if more > 0 else 0):
            become_subreaper(more > 0)


def run_zip(run_autograder: Path, log_path: Path, timeout_s: float, python: str | None = None,
            container: containers.Limits | None = None) -> ZipRun:
    """Run the zip's run_autograder as Gradescope would, killing everything after `timeout_s`, inside a container
    with `container`'s limits where this machine allows it. What outlives it is killed too, and listed in `left`:
    while it grades, this process is a child subreaper, so a process the grading left (or detached) is adopted here,
    not by init, whatever its user."""
    _adopt_orphans(+1)
    try:
        with containers.Container(container) as enclosure:
            run = _run_zip(run_autograder, log_path, timeout_s, python, enclosure)
            run.container = enclosure.record()
            return run
    finally:
        _adopt_orphans(-1)


def _run_zip(run_autograder: Path, log_path: Path, timeout_s: float, python: str | None,
             enclosure: containers.Container) -> ZipRun:
    root = run_autograder.parent
    interpreter = Path(python or sys.executable).absolute()
    bin_folder = interpreter.parent
    if not (bin_folder / "python").exists() or (bin_folder / "python").resolve() != interpreter.resolve():
        bin_folder = root.parent / "bin"  # run_autograder runs `python`: make it this interpreter
        bin_folder.mkdir(exist_ok=True)
        (bin_folder / "python").write_text(f'#!/bin/sh\nexec "{interpreter}" "$@"\n')
        (bin_folder / "python").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_folder}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
    env.pop("PYTHONPATH", None)
    started, timed_out, before = time.monotonic(), False, descendants(os.getpid())
    with open(log_path, "w") as log:
        with _RUNNING_LOCK:  # started and registered at once: another grading's clean-up, which lists this
            # process's descendants under the lock, must never see it unregistered and kill it as left over
            proc = subprocess.Popen(enclosure.command(["bash", str(run_autograder)]), stdout=log,
                                    stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
            _RUNNING.add(proc.pid)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:  # as Gradescope does at its limit: everything ends, at once
            timed_out = True
            os.kill(proc.pid, signal.SIGSTOP)  # it first, or it would see its children die and report that
            kill_tree(proc.pid)
            proc.kill()
            proc.wait()
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc.pid)
    wall_s = time.monotonic() - started
    try:
        results = json.loads((root / "results" / "results.json").read_text())
    except (OSError, ValueError):
        results = None
    try:
        report = json.loads((root / "results" / "supervisor.json").read_text())
    except (OSError, ValueError):
        report = {}
    uid = report.get("kernel_uid")
    if timed_out:  # the supervisor was killed before it could clean up: what it would have removed
        _clean_up_after(report)

    def adopted() -> set[int]:
        with _RUNNING_LOCK:  # the other gradings running beside this one are theirs
            others = set().union(*({pid} | descendants(pid) for pid in _RUNNING))
            return descendants(os.getpid()) - before - others

    def alive() -> set[int]:
        found = adopted() | (processes_of_user(uid) if isinstance(uid, int) else set())
        return {pid for pid in found if not is_zombie(pid)}
    deadline = time.monotonic() + 3  # processes just killed take a moment to go
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = sorted(alive())
    for pid in left:  # reported, and not left running
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 2
    while alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in adopted():  # collected, so that no zombie of the grading stays in this process's table
        if is_zombie(pid):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    return ZipRun(results, wall_s, timed_out, left)


def _run_registered(command: list[str]) -> None:
    """Run `command` (an rm) registered as a grading's process: a grading finishing beside it in grade-all would
    otherwise take it for one its own notebook left, and kill it."""
    with _RUNNING_LOCK:
        proc = subprocess.Popen(command)
        _RUNNING.add(proc.pid)
    try:
        proc.wait()
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc.pid)


def _clean_up_after(report: dict) -> None:
    """Remove what a killed supervisor left: its private folder and the files of the notebook's user."""
    from autograder.sandbox import users

    if isinstance(report.get("private"), str) and Path(report["private"]).name.startswith("course-grading-"):
        _run_registered(["rm", "-rf", "--one-file-system", "--", report["private"]])
    if isinstance(report.get("kernel_uid"), int):
        users.clean_up_after(report["kernel_uid"])
    group = report.get("notebook_cgroup")
    if isinstance(group, str) and group.startswith("/sys/fs/cgroup/") and \
            Path(group).name.startswith("course-notebook-") and Path(group).is_dir():
        from autograder.sandbox.cgroups import Cgroup

        containers.Container._remove(Cgroup(Path(group), 1 if "/sys/fs/cgroup/memory/" in group else 2, "memory"))


def grade(submission, assignment: Assignment | None = None, out_dir=None, timeout_s: float = DEFAULT_TIMEOUT_S,
          quiet: bool = False, python: str | None = None,
          container: containers.Limits | None = containers.MEMORY_ONLY) -> dict:
    """Grade one submission; returns the Gradescope results dict (also written to out_dir/results.json).
    `container`: the limits of the emulated Gradescope container (containers.GRADESCOPE: 768 MB and 0.5 CPU; the
    default, containers.MEMORY_ONLY, the memory limit at this machine's speed; None: no container)."""
    return grade_with_run(submission, assignment, out_dir, timeout_s, quiet, python, container)[0]


def grade_with_run(submission, assignment: Assignment | None = None, out_dir=None,
                   timeout_s: float = DEFAULT_TIMEOUT_S, quiet: bool = False, python: str | None = None,
                   container: containers.Limits | None = containers.MEMORY_ONLY) -> tuple[dict, ZipRun | None]:
    """`grade`, and how the zip's run went (None when there was nothing to run it on)."""
    submission = Path(submission).resolve()
    assignment = assignment or find(submission.name)
    out_dir = Path(out_dir or submission.parent / f"{submission.stem}-graded").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not assignment.zip_path.exists():
        raise FileNotFoundError(f"{assignment.zip_path} is missing: run `make release` first.")
    results_path = out_dir / "results.json"
    results_path.unlink(missing_ok=True)
    start, run = time.time(), None
    tmp = tempfile.mkdtemp(prefix="grade-")
    try:
        os.chmod(tmp, 0o700)  # the notebook's user needs nothing here (its folders are the supervisor's private one)
        if not submission.exists():
            results = _fallback_results(assignment, f"Submission {submission.name} not found.")
        else:
            try:
                entry = gradescope_layout(Path(tmp) / "autograder", assignment, submission)
                run = run_zip(entry, out_dir / "grading.log", timeout_s, python, container)
            except zipfile.BadZipFile:
                results = _fallback_results(assignment, f"{submission.name} is not a readable zip file: submit the "
                                                        "zip made by the export cell.")
            except OSError as error:  # a zip whose entries clash (a file and a folder of one name), a full disk, ...
                results = _fallback_results(assignment, f"{submission.name} could not be laid out for grading "
                                                        f"({type(error).__name__}: {error}); please tell the course staff.")
            else:
                report = entry.parent / "results" / "supervisor.json"
                if report.exists():  # who ran the notebook, what the process tree peaked at
                    shutil.copy(report, out_dir / "supervisor.json")
                results = run.results or _fallback_results(
                    assignment, "The autograder wrote no results.json; please tell the course staff.")
                if run.timed_out:
                    results["output"] = (f"Grading was stopped after {timeout_s:.0f} s. " +
                                         results.get("output", "")).strip()
                (out_dir / "run.json").write_text(json.dumps({"results_by_zip": run.results is not None,
                                                              "wall_s": round(run.wall_s, 1), "timed_out": run.timed_out,
                                                              "left": run.left, "container": run.container}))
    finally:  # rm, not shutil.rmtree: a submission's folders can be nested deeper than Python's recursion limit
        _run_registered(["rm", "-rf", "--", tmp])
    results.setdefault("execution_time", round(time.time() - start, 1))
    results_path.write_text(json.dumps(results, indent=2))
    score, total = summarize(results, out_dir / "summary.txt", assignment)
    if not quiet:
        print((out_dir / "summary.txt").read_text())
        print(f"score: {score:g} / {total:g}")
    return results, run


def questions_of(results: dict) -> dict[str, dict]:
    """{question: {score, max_score, output, passed}} from results.json, a question's public and hidden entries
    together (extra_data.question names it; the 0-point submission check belongs to none)."""
    merged: dict[str, dict] = {}
    for test in results.get("tests", []):
        if "score" not in test:
            continue
        question = (test.get("extra_data") or {}).get("question", test["name"])
        if question is None:
            continue
        entry = merged.setdefault(question, {"score": 0.0, "max_score": 0.0, "output": "", "passed": True})
        entry["score"] += float(test.get("score") or 0)
        entry["max_score"] += float(test.get("max_score") or 0)
        entry["output"] = (entry["output"] + "\n\n" + (test.get("output") or "")).strip()
        entry["passed"] &= test.get("status", "passed" if test.get("score", 0) >= test.get("max_score", 0)
                                    else "failed") == "passed"
    return merged


def per_question(results: dict) -> dict[str, tuple[float, float]]:
    """(score, max) per question."""
    return {q: (e["score"], e["max_score"]) for q, e in questions_of(results).items()}


def summarize(results: dict, path: Path, assignment: Assignment) -> tuple[float, float]:
    lines = [f"{assignment.name}: {assignment.title}", ""]
    if results.get("output"):
        lines += [results["output"].strip(), ""]
    for test in results.get("tests", []):
        if "score" not in test:
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
              python: str | None = None, jobs: int | None = None,
              container: containers.Limits | None = containers.MEMORY_ONLY) -> Path:
    """Grade every submission in `folder` (a folder of notebooks/zips, or Gradescope's export) and write scores,
    gradebooks, feedback and the report: autograder/cohort.py. Returns the path of scores.csv."""
    from autograder.cohort import grade_cohort

    options = {"timeout_s": timeout_s, "container": container} | ({"python": python} if python else {})
    return grade_cohort(folder, out_dir, assignment, jobs, progress=False, **options) / "scores.csv"


CONTAINERS = {"gradescope": containers.GRADESCOPE, "memory": containers.MEMORY_ONLY, "none": None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", nargs="?", help="a notebook or export zip")
    parser.add_argument("--all", metavar="FOLDER", help="grade every submission in FOLDER or Gradescope export "
                        "archive (see autograder/cohort.py)")
    parser.add_argument("--assignment", choices=sorted(ASSIGNMENTS), help="default: from the file name")
    parser.add_argument("--out", help="output folder (default: beside the submission)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before grading is stopped")
    parser.add_argument("--python", help="interpreter that grades (default: this one); see `make gradescope-env`")
    parser.add_argument("--jobs", type=int, help="with --all: submissions graded at once (default: the cores)")
    parser.add_argument("--container", choices=sorted(CONTAINERS), default="gradescope",
                        help="Gradescope's container emulated (default: 768 MB and 0.5 CPU; memory: 768 MB only)")
    args = parser.parse_args(argv)
    assignment = ASSIGNMENTS[args.assignment] if args.assignment else None
    container = CONTAINERS[args.container]
    if args.all:  # the cohort's command line (autograder/cohort.py) has more options
        from autograder.cohort import main as cohort_main

        cohort_main([args.all] + (["--assignment", args.assignment] if args.assignment else []) +
                    (["--out", args.out] if args.out else []) + (["--jobs", str(args.jobs)] if args.jobs else []) +
                    ["--timeout", str(args.timeout), "--container", args.container] +
                    (["--python", args.python] if args.python else []))
    elif args.submission:
        grade(args.submission, assignment, args.out, args.timeout, python=args.python, container=container)
    else:
        parser.error("give a SUBMISSION or --all FOLDER")


if __name__ == "__main__":
    main()
