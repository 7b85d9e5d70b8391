"""Build student releases and Gradescope autograder zips from the reference solutions.

    python -m autograder.build [NAME ...] [--no-self-grade] [--repo URL] [--branch BRANCH]

For each assignment:
  1. the master `solutions/NAME/NAME.py` (jupytext percent format, otter-assign markers) becomes a
     notebook in build/NAME/master/, next to a copy of the course library and the data grading needs, with the
     course's address (course.toml, or --repo/--branch) in its setup cell;
  2. `otter assign` splits it into the student notebook (-> assignments/NAME/, committed; otter's init cell moved
     after the setup cell, which installs otter in Colab) and the autograder zip (-> build/zips/NAME-autograder.zip);
  3. the reference solution is executed end to end (training included; cached until the master or the
     course library changes) to produce the reference weights;
  4. the reference submission and the untouched student notebook are graded through the same path as
     a student's; the build fails unless the reference gets full marks and the stub gets zero.
A table of questions, points, scores and build time closes the run; the README's Open in Colab table follows the
configured address.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from autograder import config as course_config
from autograder.assignments import ASSIGNMENTS, BUILD, ROOT, Assignment

COURSE_LIBRARY = ROOT / "shared" / "course"
SANDBOX = ROOT / "autograder" / "sandbox"  # the grading runtime, shipped in every zip
ZIP_ENTRY_POINT = ("run_autograder", "supervise.py")  # of SANDBOX's files, those at the zip's root
GRADING_DATA_CACHE = BUILD / "grading_data"
# modules of the course library that cannot change trained weights (Colab plumbing, the tests' helpers, figures,
# written answers): editing them does not retrain the references
NOT_TRAINING = {"colab.py", "grading.py", "plotting.py", "written.py"}


def log(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def _exclusive(name: str):
    """Held while build/NAME/ is checked and rewritten: two processes building the same assignment (pytest's
    workers, a `make release` beside a test run) take turns, and the second finds the first's output current."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _replaced_atomically(path: Path):
    """Yields a temporary path beside `path` to write; it becomes `path` in one rename, so a reader never opens a
    half-written file (a zip another process is grading with, say)."""
    temporary = path.with_name(f".{os.getpid()}.{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def grading_data_file(name: str) -> Path:
    """Create (once) a data file the autograder ships, from the course's own data code."""
    from course import data

    path = GRADING_DATA_CACHE / name
    if path.exists():
        return path
    GRADING_DATA_CACHE.mkdir(parents=True, exist_ok=True)
    with _replaced_atomically(path) as temporary:
        if name.startswith("imdb_test_ids_"):
            from course.grading import encode_imdb_test

            with open(temporary, "wb") as out:  # a file object: np.savez would append .npz to the temporary name
                encode_imdb_test(out, int(name.removeprefix("imdb_test_ids_").removesuffix(".npz")))
        elif name == "shakespeare_val.txt":  # the held-out last 10% of the corpus (assignment 6)
            corpus = data.load_tinyshakespeare()
            temporary.write_text(corpus[int(0.9 * len(corpus)):], encoding="utf-8")
        else:
            raise ValueError(f"no recipe for grading data file {name}")
    return path


def student_notebook_json(dist: Path, assignment: Assignment) -> str:
    """The student notebook otter assign made, with stable cell ids and no outputs, so that a
    rebuild is byte-identical to the committed release."""
    import nbformat

    nb = nbformat.read(dist / "student" / f"{assignment.name}.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nbformat.writes(nb) + "\n"


def master_notebook(assignment: Assignment, config: course_config.CourseConfig | None = None):
    """The master as a notebook, its setup cell written: the bootstrap, with the course's address (course.toml)."""
    import jupytext

    nb = jupytext.read(assignment.master)
    setup = [cell for cell in nb.cells if course_config.is_setup_cell(cell)]
    if len(setup) != 1:
        raise ValueError(f"{assignment.master}: expected one setup cell (tagged otter_ignore, with the line "
                         f"{course_config.SETUP_MARKER!r}), found {len(setup)}")
    setup[0].source = course_config.write_setup(setup[0].source, assignment.name, config or course_config.load(),
                                                str(assignment.master))
    nb.cells = [cell for cell in nb.cells if "rubric" not in cell.metadata.get("tags", [])]  # for graders only
    return nb


def setup_cell_first(path: Path) -> None:
    """Move otter's init cell (`import otter`, which otter assign puts first) to just after the setup cell: in Colab
    the setup cell installs otter, so it must run first."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    init = next(i for i, cell in enumerate(nb.cells) if cell.source.startswith("# Initialize Otter"))
    setup = next(i for i, cell in enumerate(nb.cells) if course_config.is_setup_cell(cell))
    if init < setup:
        nb.cells.insert(setup, nb.cells.pop(init))
        nbformat.write(nb, path)


def otter_assign(assignment: Assignment, config: course_config.CourseConfig | None = None) -> Path:
    """Run otter assign on the master; returns the dist folder (autograder/ and student/). A dist folder made from
    the same inputs (the master as a notebook, the course library, the zip's requirements) is kept as it is, so that
    a process reading it (another of pytest's workers) never sees it removed and rebuilt."""
    stage = BUILD / assignment.name / "master"
    dist = BUILD / assignment.name / "dist"
    notebook = master_notebook(assignment, config)
    cells = [{key: value for key, value in cell.items() if key != "id"} for cell in notebook.cells]  # ids are random
    inputs = hashlib.sha256(json.dumps([notebook.metadata, cells], sort_keys=True).encode())
    for path in sorted(COURSE_LIBRARY.glob("*.py")) + [ROOT / "autograder" / "requirements.txt"]:
        inputs.update(path.name.encode() + b"\0" + path.read_bytes())
    key = inputs.hexdigest()
    with _exclusive(assignment.name):
        if (dist / ".inputs").exists() and (dist / ".inputs").read_text() == key:
            return dist
        _otter_assign(assignment, notebook, stage, dist)
        (dist / ".inputs").write_text(key)
    return dist


def _otter_assign(assignment: Assignment, notebook, stage: Path, dist: Path) -> None:
    import nbformat

    shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(dist, ignore_errors=True)
    stage.mkdir(parents=True)
    nbformat.write(notebook, stage / f"{assignment.name}.ipynb")
    shutil.copytree(COURSE_LIBRARY, stage / "course", ignore=shutil.ignore_patterns("__pycache__"))
    (stage / "grading_data").mkdir()
    for name in assignment.grading_data:
        shutil.copy(grading_data_file(name), stage / "grading_data" / name)
    shutil.copy(ROOT / "autograder" / "requirements.txt", stage / "requirements.txt")
    cmd = [sys.executable, "-m", "otter", "assign", "--no-pdfs", "--no-run-tests", f"{assignment.name}.ipynb", str(dist)]
    result = subprocess.run(cmd, cwd=stage, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"otter assign failed for {assignment.name}:\n{result.stdout}\n{result.stderr}")
    for notebook in (dist / "student" / f"{assignment.name}.ipynb", dist / "autograder" / f"{assignment.name}.ipynb"):
        setup_cell_first(notebook)


def release_student_notebook(assignment: Assignment, dist: Path) -> None:
    target = assignment.release.parent
    target.mkdir(parents=True, exist_ok=True)
    assignment.release.write_text(student_notebook_json(dist, assignment))


def copy_autograder_zip(assignment: Assignment, dist: Path, config: course_config.CourseConfig | None = None) -> None:
    """The Gradescope zip: otter's tests, setup.sh and environment.yml; the course library and the grading data at
    its root; the course's grading runtime (sandbox/, and its entry point run_autograder -> supervise.py) in place of
    otter's run_otter.py; grading.json (the questions, test cases, points and limits the supervisor goes by)."""
    zips = sorted((dist / "autograder").glob(f"{assignment.name}-autograder_*.zip"))
    if len(zips) != 1:
        raise RuntimeError(f"expected one autograder zip in {dist / 'autograder'}, found {zips}")
    assignment.zip_path.parent.mkdir(parents=True, exist_ok=True)
    course = config or course_config.load()
    with (zipfile.ZipFile(zips[0]) as source, _replaced_atomically(assignment.zip_path) as path,
          zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target):
        tests = {}
        for item in source.infolist():
            name = item.filename
            if name in ("run_otter.py", "run_autograder") or name.endswith("/"):
                continue  # otter's grading: replaced by the supervisor (otter_config.json stays: setup.sh reads it)
            if name.startswith("tests/"):
                tests[name] = source.read(item).decode()
            item.filename = name.removeprefix("files/")  # course/ and grading_data/, where the supervisor reads them
            target.writestr(item, source.read(name))
        for path in sorted(SANDBOX.iterdir()):
            if path.is_file() and (path.suffix == ".py" or path.name in ZIP_ENTRY_POINT):
                entry = zipfile.ZipInfo(path.name if path.name in ZIP_ENTRY_POINT else f"sandbox/{path.name}",
                                        date_time=(2024, 1, 1, 0, 0, 0))
                entry.external_attr = (0o755 if path.name == "run_autograder" else 0o644) << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                target.writestr(entry, path.read_bytes())
        target.writestr("grading.json", json.dumps(grading_manifest(assignment, tests, course), indent=2))
    write_written_questions(assignment)


def grading_manifest(assignment: Assignment, tests: dict[str, str], course: course_config.CourseConfig) -> dict:
    """What the supervisor grades by: the assignment, the files a submission is made of, every question's test cases
    with their points and visibility, what students see when (course.toml's [gradescope]), the leaderboard entries,
    the written questions (graded by people, listed for the tools that gather answers), and the limits."""
    from otter.test_files import ExceptionTestFile

    from autograder.masters import load
    from autograder.sandbox.limits import Limits

    master = load(assignment.name)
    order = list(master.tests)
    questions = []
    for path, text in tests.items():
        test_file = ExceptionTestFile.from_string(text, path)
        questions.append({"name": test_file.name, "file": path, "cases": [
            {"name": case.body.test_func.__name__, "points": case.points, "hidden": case.hidden,
             "needs_notebook": bool(case.body._get_func_params())} for case in test_file.test_cases]})
    questions.sort(key=lambda q: order.index(q["name"]) if q["name"] in order else len(order))
    return {"assignment": assignment.name, "title": assignment.title, "notebook": f"{assignment.name}.ipynb",
            "student_files": list(assignment.student_files),
            "hidden_visibility": course.hidden_tests_visibility,
            "leaderboard": course.leaderboard and bool(assignment.leaderboard),
            "leaderboard_entries": [{"name": name, "order": order} for name, order in assignment.leaderboard],
            "written_questions": [{"name": w["name"], "points": w["points"]} for w in master.written],
            "questions": questions, "limits": Limits().as_config()}


def write_written_questions(assignment: Assignment) -> Path | None:
    """build/zips/NAME-written-questions.md: for the course staff, the written questions to add to Gradescope's
    outline as manually graded questions (name, points, prompt) with each one's rubric hint from the master."""
    from autograder.masters import load

    written = load(assignment.name).written
    path = assignment.zip_path.with_name(f"{assignment.name}-written-questions.md")
    if not written:
        path.unlink(missing_ok=True)
        return None
    lines = [f"# {assignment.title}: written questions (graded by people)", "",
             "On Gradescope, add one manually graded question per entry to the assignment's outline, with these "
             f"points; students' answers are in `{assignment.name}_written_answers.md` inside each submission.", ""]
    for w in written:
        lines += [f"## {w['name']} ({w['points']:g} points)", "", *("> " + l for l in w["prompt"].splitlines()), "",
                  "**Rubric hint:** " + (w["rubric"] or "(none in the master)"), ""]
    path.write_text("\n".join(lines))
    return path


def _source_key(assignment: Assignment) -> str:
    """What the reference weights depend on: the master's code cells (not its markdown, not its tests: editing the
    text or a test does not retrain) and the course library (what notebooks import; grading's code is
    autograder/sandbox)."""
    from autograder.masters import load

    master = load(assignment.name)
    digest = hashlib.sha256("\0".join(master.code_cells).encode())
    for path in sorted(COURSE_LIBRARY.glob("*.py")):
        if path.name not in NOT_TRAINING:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_reference(assignment: Assignment, dist: Path) -> Path:
    """The reference submission: the solution notebook otter assign just made (its current text) with the weights
    the reference solution trains. Training runs the notebook end to end, cached in build/NAME/reference/ until a
    code cell of the master or the course library changes (grading runs the notebook's cells itself, so the
    submitted notebook needs no outputs)."""
    with _exclusive(assignment.name):  # one process trains; another waits and finds the weights current
        return _run_reference(assignment, dist)


def _run_reference(assignment: Assignment, dist: Path) -> Path:
    import nbformat
    from nbclient import NotebookClient

    workdir = BUILD / assignment.name / "reference"
    submission = workdir / f"{assignment.name}-reference.zip"
    key_file = workdir / "source-key.txt"
    key = _source_key(assignment)
    notebook = dist / "autograder" / f"{assignment.name}.ipynb"
    if key_file.exists() and key_file.read_text() == key and all((workdir / n).exists() for n in assignment.student_files):
        log(f"  reference: weights up to date ({workdir.relative_to(ROOT)})")
    else:
        from course import quick

        if quick.enabled():  # the kernel would inherit it, and the cache would keep a quick run's weights
            raise RuntimeError(f"{quick.ENV} is set: the reference trains at full length; unset it (`unset {quick.ENV}`)")
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        executed = workdir / f"{assignment.name}-executed.ipynb"
        shutil.copy(notebook, workdir / notebook.name)  # otter.Notebook reads its tests from the file
        nb = nbformat.read(notebook, as_version=4)
        start = time.time()
        log(f"  reference: executing the solution notebook (trains the reference model on {_device_name()}) ...")
        NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
        nbformat.write(nb, executed)
        log(f"  reference: executed in {time.time() - start:.0f} s -> {executed.relative_to(ROOT)}")
        for name in assignment.student_files:
            if not (workdir / name).exists():
                raise RuntimeError(f"the reference solution did not write {name}")
        key_file.write_text(key)
    with _replaced_atomically(submission) as path, zipfile.ZipFile(path, "w") as zf:
        zf.write(notebook, notebook.name)
        for name in assignment.student_files:
            zf.write(workdir / name, name)
        written = reference_written_answers(assignment)
        if written is not None:
            zf.writestr(*written)
    return submission


def reference_written_answers(assignment: Assignment) -> tuple[str, str] | None:
    """(file name, text) of the written answers file the reference's export would carry: each rubric as its answer."""
    from course.written import answers_file_name, answers_markdown

    from autograder.masters import load

    written = load(assignment.name).written
    if not written:
        return None
    return answers_file_name(assignment.name), answers_markdown(
        assignment.name, [{**w, "answer": w["rubric"] or "(reference)"} for w in written])


def _device_name() -> str:
    import torch

    return "CUDA" if torch.cuda.is_available() else "CPU"


def build(assignment: Assignment, self_grade: bool = True, config: course_config.CourseConfig | None = None) -> dict:
    from autograder.grade import grade, per_question, question_points

    start = time.time()
    log(f"== {assignment.name}: {assignment.title}")
    dist = otter_assign(assignment, config)
    release_student_notebook(assignment, dist)
    copy_autograder_zip(assignment, dist, config)
    log(f"  student notebook -> {assignment.release.relative_to(ROOT)}; autograder -> {assignment.zip_path.relative_to(ROOT)}")
    points = question_points(assignment)
    row = {"assignment": assignment.name, "questions": len(points), "points": sum(points.values())}
    if self_grade:
        checks = BUILD / assignment.name / "self-grade"
        reference = grade(run_reference(assignment, dist), assignment, checks / "reference", quiet=True)
        stub = grade(assignment.release, assignment, checks / "stub", quiet=True)
        row["reference"] = sum(s for s, _ in per_question(reference).values())
        row["stub"] = sum(s for s, _ in per_question(stub).values())
        row["grading_s"] = reference.get("execution_time")
    row["build_s"] = round(time.time() - start, 1)
    return row


def print_table(rows: list[dict]) -> None:
    columns = ["assignment", "questions", "points", "reference", "stub", "grading_s", "build_s"]
    widths = {c: max(len(c), *(len(f"{r.get(c, '-'):g}" if isinstance(r.get(c), float) else str(r.get(c, "-"))) for r in rows)) for c in columns}
    fmt = lambda v: f"{v:g}" if isinstance(v, float) else str(v)
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(fmt(r.get(c, "-")).ljust(widths[c]) for c in columns))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="assignments to build (default: all)")
    parser.add_argument("--no-self-grade", action="store_true", help="skip executing and grading the reference and stub")
    parser.add_argument("--repo", help="the course repository's git URL (default: course.toml; make release COURSE_REPO=...)")
    parser.add_argument("--branch", help="its branch or tag (default: course.toml; make release COURSE_BRANCH=...)")
    args = parser.parse_args(argv)
    names = args.names or list(ASSIGNMENTS)
    config = course_config.load(args.repo, args.branch)
    log(f"course library: pip install \"{config.pip_url}\" (from {'the command line' if args.repo or args.branch else 'course.toml'})")
    rows = [build(ASSIGNMENTS[n], not args.no_self_grade, config) for n in names]
    if course_config.update_readme(config, ASSIGNMENTS.values()):
        log("README.md: the Open in Colab table now follows the configured repository")
    print()
    print_table(rows)
    (BUILD / "release-table.json").write_text(json.dumps(rows, indent=2))
    failures = [r["assignment"] for r in rows if "reference" in r and (r["reference"] != r["points"] or r["stub"] != 0)]
    if failures:
        print(f"\nFAILED: the reference must score full marks and the stub zero: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
