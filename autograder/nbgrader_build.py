"""Build an nbgrader course directory from the same masters, and check it end to end.

    python -m autograder.nbgrader_build [NAME ...] [--root DIR]      (make nbgrader [NBGRADER_ASSIGNMENTS="a1_tfidf ..."])

For courses that run JupyterHub with nbgrader instead of Gradescope with otter. For each assignment:
  1. the master `solutions/NAME/NAME.py` becomes the nbgrader source notebook
     build/nbgrader/source/NAME/NAME.ipynb: solution regions (`# BEGIN SOLUTION` ... `# END SOLUTION`,
     lines ending `# SOLUTION` / `# SOLUTION NO PROMPT`) become `### BEGIN SOLUTION` ... `### END SOLUTION`
     in "autograded answer" cells; every otter test becomes one locked "autograder tests" cell worth its
     points (otter's rule for splitting a question's points), and hidden tests sit between
     `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS` so that the release does not show them; otter's
     raw marker cells are dropped; markdown and the not-graded cells (data, training, plots) are kept;
  2. `nbgrader generate_assignment NAME --force` writes the student version to build/nbgrader/release/NAME/;
  3. two submissions are autograded with `nbgrader autograde NAME --force` under COURSE_GRADING=1 (so
     that training and saving weights are no-ops): `reference` (the source notebook with its solutions,
     plus the weights file of the otter build's reference run, build/NAME/reference/NAME-reference.zip)
     and `stub` (the released notebook, untouched);
  4. the gradebook's scores are printed as a table; the exit status is non-zero unless every reference
     scores full marks and every stub zero.

Prompt blocks (`\"\"\" # BEGIN PROMPT` ... `\"\"\" # END PROMPT`) become comment lines just above the solution
region, in both versions: nbgrader replaces a solution region with `# YOUR CODE HERE` and
`raise NotImplementedError()`, so a prompt cannot be live code there.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from autograder import masters
from autograder.assignments import ASSIGNMENTS, BUILD, ROOT, Assignment

NBGRADER_ROOT = BUILD / "nbgrader"
CELL_TIMEOUT_S = 600  # nbgrader's per-cell limit (its default, 30 s, is too short for the data cells on a CPU)
STUDENTS = ("reference", "stub")



def log(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- master -> nbgrader source notebook

_BEGIN_SOLUTION = re.compile(r"^\s*#\s*BEGIN SOLUTION(\s+NO PROMPT)?\s*$")
_END_SOLUTION = re.compile(r"^\s*#\s*END SOLUTION\s*$")
_SOLUTION_LINE = re.compile(r"^(?P<code>.*?)\s*#\s*SOLUTION(\s+NO PROMPT)?\s*$")
_BEGIN_PROMPT = re.compile(r'^\s*("""|\'\'\')\s*#\s*BEGIN PROMPT\s*$')
_END_PROMPT = re.compile(r'^\s*("""|\'\'\')\s*#\s*END PROMPT\s*$')


def _indent(line: str) -> str:
    return re.match(r"\s*", line).group(0)


def convert_solution_code(source: str) -> tuple[str, bool]:
    """otter-assign solution markers -> nbgrader's; returns (source, whether it has a solution region).

    `# BEGIN SOLUTION` ... `# END SOLUTION` keeps its lines between `### BEGIN SOLUTION` / `### END SOLUTION`;
    a run of consecutive lines ending `# SOLUTION` or `# SOLUTION NO PROMPT` becomes one such region (the
    student version gets nbgrader's stub instead of otter's `x = ...`); a prompt block becomes comments.
    """
    out: list[str] = []
    run: list[str] = []  # consecutive single-line solutions
    region: list[str] | None = None
    region_indent = ""
    prompt: list[str] | None = None
    has_solution = False

    def flush_run() -> None:
        nonlocal has_solution
        if run:
            indent = _indent(run[0])
            out.extend([f"{indent}### BEGIN SOLUTION", *run, f"{indent}### END SOLUTION"])
            run.clear()
            has_solution = True

    for line in source.split("\n"):
        if prompt is not None:
            if _END_PROMPT.match(line):
                out.extend(_comment_prompt(prompt))
                prompt = None
            else:
                prompt.append(line)
            continue
        if _BEGIN_PROMPT.match(line):
            flush_run()
            prompt = []
            continue
        if region is not None:
            if _END_SOLUTION.match(line):
                out.extend([f"{region_indent}### BEGIN SOLUTION", *region, f"{region_indent}### END SOLUTION"])
                region, has_solution = None, True
            else:
                match = _SOLUTION_LINE.match(line)
                region.append(match.group("code").rstrip() if match else line)
            continue
        if _BEGIN_SOLUTION.match(line):
            flush_run()
            region, region_indent = [], _indent(line)
            continue
        match = _SOLUTION_LINE.match(line)
        if match:
            run.append(match.group("code").rstrip())
            continue
        flush_run()
        out.append(line)
    flush_run()
    if region is not None or prompt is not None:
        raise ValueError("unterminated BEGIN SOLUTION or BEGIN PROMPT block")
    return "\n".join(out), has_solution


def _comment_prompt(lines: list[str]) -> list[str]:
    """Prompt code as comments, keeping its indentation: a hint in both versions that never runs."""
    code = [line for line in lines if line.strip()]
    if not code:
        return []
    indent = min((_indent(line) for line in code), key=len)
    return [f"{indent}# {line[len(indent):]}" if line.strip() else "" for line in lines]


def resolve_points(total, tests: list[masters.TestSource]) -> list[float]:
    """Points per test, as otter resolves them (otter.test_files.abstract_test.resolve_test_file_points)."""
    if isinstance(total, dict):
        total = total.get("each", 1) * len(tests)
    if isinstance(total, list):
        if len(total) != len(tests):
            raise ValueError(f"{len(total)} point values for {len(tests)} tests")
        return [float(p) for p in total]
    given = [t.points for t in tests]
    specified = sum(p for p in given if p is not None)
    unspecified = sum(p is None for p in given)
    if total is not None:
        if specified > total:
            raise ValueError("more points in the tests' configs than the question has")
        each = (total - specified) / unspecified if unspecified else 0.0
    elif specified == 0:
        each = 1 / unspecified if unspecified else 0.0
    else:
        each = 0.0
    return [float(p) if p is not None else float(each) for p in given]


def grade_cell_source(test: masters.TestSource, points: float) -> str:
    """A test function and its call with the notebook's globals (`env` gets all of them, as in otter)."""
    import inspect

    namespace: dict = {}
    exec(compile(test.source, f"<test {test.name}>", "exec"), namespace)
    params = inspect.signature(namespace[test.name]).parameters
    args = ", ".join("globals()" if p == "env" else p for p in params)
    body = f"{test.source.strip()}\n\n\n{test.name}({args})"
    if test.hidden:
        return (f"# Hidden test ({points:g} point{'s' if points != 1 else ''}): it runs when your notebook is graded.\n"
                f"### BEGIN HIDDEN TESTS\n{body}\n### END HIDDEN TESTS")
    return body


def _metadata(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook(assignment: Assignment):
    """The nbgrader source notebook (an nbformat NotebookNode) made from the assignment's master."""
    import nbformat

    from autograder.build import master_notebook

    master = masters.load(assignment.name)
    nb = master_notebook(assignment)  # the master, with the course's address (course.toml) in its setup cell
    cells, question, in_tests, test_index = [], None, False, 0
    solution_counts: dict[str, int] = {}
    points_by_test: dict[str, float] = {}
    for name, tests in master.tests.items():
        points_by_test.update({f"{name}/{t.name}": p for t, p in zip(tests, resolve_points(master.points[name], tests))})

    for cell in nb.cells:
        if cell.cell_type == "raw":
            marker = masters._raw_marker(cell.source)
            if marker == "BEGIN QUESTION":
                question = master_question_name(cell.source)
            elif marker == "END QUESTION":
                question = None
            elif marker == "BEGIN TESTS":
                in_tests, test_index = True, 0
            elif marker == "END TESTS":
                in_tests = False
            elif marker != "ASSIGNMENT CONFIG":
                cells.append(nbformat.v4.new_raw_cell(cell.source))
            continue
        if cell.cell_type == "markdown":
            info = cell.metadata.get("written_answer") if "written_answer" in cell.metadata.get("tags", []) else None
            if info:  # a written answer: a manually graded answer cell worth the same points; the rubric as its answer
                rubric = next((w["rubric"] for w in master.written if w["name"] == info["name"]), "")
                cells.append(nbformat.v4.new_markdown_cell(f"Rubric hint: {rubric}" if rubric else cell.source,
                                                           metadata=_metadata(info["name"], solution=True, grade=True,
                                                                              locked=False, points=info["points"])))
            else:
                cells.append(nbformat.v4.new_markdown_cell(cell.source))
            continue
        if in_tests:
            test = master.tests[question][test_index]
            test_index += 1
            points = points_by_test[f"{question}/{test.name}"]
            # a hidden test's name stays out of the release, cell metadata included
            grade_id = f"{question}_hidden_{test_index}" if test.hidden else f"{question}_{test.name}"
            cells.append(nbformat.v4.new_code_cell(grade_cell_source(test, points), metadata=_metadata(
                grade_id, solution=False, grade=True, locked=True, points=points)))
            continue
        source, has_solution = convert_solution_code(cell.source)
        metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        if has_solution:
            if "otter_ignore" in metadata.get("tags", []):
                raise ValueError(f"{assignment.name}: a solution region in a cell tagged otter_ignore")
            key = question or "solution"
            solution_counts[key] = solution_counts.get(key, 0) + 1
            grade_id = f"{key}_solution" + (f"_{solution_counts[key]}" if solution_counts[key] > 1 else "")
            metadata.update(_metadata(grade_id, solution=True, grade=False, locked=False))
        cells.append(nbformat.v4.new_code_cell(source, metadata=metadata))

    _check_test_names(assignment, master, cells)
    out = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": dict(nb.metadata.get("kernelspec", {})),
                                                          "language_info": {"name": "python"}})
    for i, cell in enumerate(out.cells):
        cell["id"] = f"cell-{i:03d}"
    return out


def master_question_name(raw_source: str) -> str:
    import yaml

    return yaml.safe_load("\n".join(raw_source.splitlines()[1:]))["name"]


def _check_test_names(assignment: Assignment, master: masters.Master, cells) -> None:
    """A test cell defines its function in the notebook's globals: it must not replace a notebook name."""
    code = "\n".join(c.source for c in cells if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get("grade"))
    for tests in master.tests.values():
        for test in tests:
            if re.search(rf"^\s*(def\s+{test.name}\b|{test.name}\s*=)", code, re.M):
                raise ValueError(f"{assignment.name}: test {test.name} has the name of a notebook variable")


# ---------------------------------------------------------------- course directory, generate, autograde

CONFIG = '''\
# nbgrader configuration of the course directory built by `make nbgrader` (autograder/nbgrader_build.py)
import os

c = get_config()  # noqa: F821
here = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = here
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(here, "gradebook.db")
c.CourseDirectory.course_id = "transformers"
c.Execute.timeout = {timeout}
'''


def write_course_directory(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG.format(timeout=CELL_TIMEOUT_S))


def grading_environment() -> dict[str, str]:
    """The environment of `nbgrader autograde`: grading mode, and the data and cache folders of the Makefile."""
    env = dict(os.environ, COURSE_GRADING="1")
    mirror = ROOT.parent / "shared" / "data"
    if "COURSE_DATA_DIR" not in env and (mirror / "imdb" / "train.parquet").exists():
        env["COURSE_DATA_DIR"] = str(mirror)
    env.setdefault("COURSE_CACHE_DIR", str(BUILD / "cache"))
    return env


def _put_venv_on_path() -> None:
    """nbgrader's Gradebook runs the `alembic` command: find it beside this Python (make does not activate .venv)."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def nbgrader(root: Path, *args: str, env: dict | None = None) -> str:
    cmd = [sys.executable, "-m", "nbgrader", *args, "--force", f"--CourseDirectory.root={root}"]
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed (exit {result.returncode}):\n{output[-4000:]}")
    return output


def reference_files(assignment: Assignment) -> dict[str, bytes]:
    """The files students export beside the notebook (weights), from the otter build's reference run."""
    if not assignment.student_files:
        return {}
    reference_zip = BUILD / assignment.name / "reference" / f"{assignment.name}-reference.zip"
    if not reference_zip.exists():
        raise FileNotFoundError(f"{reference_zip.relative_to(ROOT)} is missing: run `make release {assignment.name}` first")
    from autograder.build import _source_key

    key_file = reference_zip.parent / "source-key.txt"
    if not key_file.exists() or key_file.read_text() != _source_key(assignment):
        log(f"  warning: {reference_zip.name} predates the current master or course library (make release {assignment.name})")
    with zipfile.ZipFile(reference_zip) as zf:
        return {name: zf.read(name) for name in assignment.student_files}


def _reset_assignment(root: Path, name: str) -> None:
    for folder in ("source", "release", "submitted", "autograded", "feedback"):
        if folder == "submitted":
            for student in STUDENTS:
                shutil.rmtree(root / folder / student / name, ignore_errors=True)
        else:
            shutil.rmtree(root / folder / name, ignore_errors=True)
            if folder in ("autograded", "feedback"):
                for student in STUDENTS:
                    shutil.rmtree(root / folder / student / name, ignore_errors=True)
    if (root / "gradebook.db").exists():
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            try:
                gb.remove_assignment(name)
            except MissingEntry:
                pass


@dataclass
class Result:
    assignment: str
    max_score: float
    reference: float
    stub: float
    seconds: float

    @property
    def ok(self) -> bool:
        return abs(self.reference - self.max_score) < 1e-9 and self.stub == 0


def build(assignment: Assignment, root: Path = NBGRADER_ROOT) -> Result:
    import nbformat
    from nbgrader.api import Gradebook

    start = time.time()
    name = assignment.name
    _put_venv_on_path()
    log(f"== {name}: {assignment.title}")
    write_course_directory(root)
    _reset_assignment(root, name)
    source = root / "source" / name / f"{name}.ipynb"
    source.parent.mkdir(parents=True)
    nbformat.write(source_notebook(assignment), source)
    nbgrader(root, "generate_assignment", name)
    release = root / "release" / name / f"{name}.ipynb"
    log(f"  source -> {_show(source)}; release -> {_show(release)}")

    extra = reference_files(assignment)
    for student, notebook in (("reference", source), ("stub", release)):
        folder = root / "submitted" / student / name
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / f"{name}.ipynb")
        for filename, content in (extra.items() if student == "reference" else ()):
            (folder / filename).write_bytes(content)
    log("  autograding the reference and the stub (COURSE_GRADING=1) ...")
    nbgrader(root, "autograde", name, env=grading_environment())

    scores = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in STUDENTS:
            submission = gb.find_submission(name, student)
            # the autograded part: written answers are graded by hand (manually graded answer cells)
            scores[student] = (float(submission.code_score), float(submission.max_code_score))
    result = Result(name, scores["reference"][1], scores["reference"][0], scores["stub"][0], round(time.time() - start, 1))
    log(f"  reference {result.reference:g} / {result.max_score:g}, stub {result.stub:g} ({result.seconds:g} s)")
    return result


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def print_table(results: list[Result]) -> None:
    rows = [("assignment", "max", "reference", "stub", "seconds")]
    rows += [(r.assignment, f"{r.max_score:g}", f"{r.reference:g}", f"{r.stub:g}", f"{r.seconds:g}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="assignments (default: all)")
    parser.add_argument("--root", type=Path, default=NBGRADER_ROOT, help="the nbgrader course directory")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in ASSIGNMENTS]
    if unknown:
        parser.error(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(ASSIGNMENTS)}")
    results, errors = [], {}
    for name in args.names or list(ASSIGNMENTS):
        try:
            results.append(build(ASSIGNMENTS[name], args.root.resolve()))
        except (FileNotFoundError, RuntimeError, ValueError) as error:  # report it, go on with the others
            log(f"  ERROR: {error}")
            errors[name] = str(error).splitlines()[0]
    print()
    print_table(results)
    for name, message in errors.items():
        print(f"{name}: not built: {message}")
    failed = [r.assignment for r in results if not r.ok] + list(errors)
    if failed:
        print(f"\nFAILED: the reference must score full marks and the stub zero: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
