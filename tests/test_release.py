"""The committed student releases are what the masters build, carry the course's address (course.toml), and contain no
placeholder, no solution and no hidden test."""
import dataclasses
import json
import re
import zipfile

import nbformat
import pytest

from autograder import config as course_config
from autograder.assignments import ASSIGNMENTS
from autograder.build import otter_assign, student_notebook_json
from autograder.masters import load

NAMES = sorted(ASSIGNMENTS)


@pytest.fixture(scope="module", params=NAMES)
def built(request):
    assignment = ASSIGNMENTS[request.param]
    return assignment, otter_assign(assignment)


def test_committed_release_is_up_to_date(built):
    assignment, dist = built
    assert assignment.release.exists(), f"{assignment.release} is missing: run `make release` and commit it"
    assert assignment.release.read_text() == student_notebook_json(dist, assignment), (
        f"{assignment.release} is stale: run `make release` and commit the result")


def test_a_dist_built_from_the_same_inputs_is_kept_and_a_changed_one_rebuilt(built, tmp_path, monkeypatch):
    """What lets pytest's workers share build/: a second otter_assign of unchanged masters leaves every file where it
    is (a worker reading it is undisturbed); a changed input (here the course's address) builds anew."""
    assignment, dist = built
    if assignment.name != "a1_tfidf":
        pytest.skip("one assignment shows it")
    notebook = dist / "student" / f"{assignment.name}.ipynb"
    before = notebook.stat().st_ino, notebook.stat().st_mtime_ns
    assert otter_assign(assignment) == dist
    assert (notebook.stat().st_ino, notebook.stat().st_mtime_ns) == before, "an unchanged master's dist was rebuilt"
    moved = dataclasses.replace(course_config.load(), repository="https://example.org/another/course.git")
    otter_assign(assignment, moved)
    assert "another/course" in notebook.read_text(), "a changed input did not rebuild the dist"
    otter_assign(assignment)  # back to the committed address, for the tests after this one
    assert "another/course" not in notebook.read_text()


def _solution_lines(name):
    """Non-trivial lines inside the master's solution regions."""
    text = load(name)
    lines, inside = [], False
    for cell in text.solution_cells:
        for line in cell.splitlines():
            stripped = line.strip()
            if stripped.endswith("# BEGIN SOLUTION") or stripped.endswith("# BEGIN SOLUTION NO PROMPT"):
                inside = True
            elif stripped.endswith("# END SOLUTION"):
                inside = False
            elif inside or re.search(r"#\s*SOLUTION", stripped):
                code = re.sub(r"\s*#\s*SOLUTION( NO PROMPT)?$", "", stripped)
                if len(code) > 12 and not code.startswith("#"):
                    lines.append(code)
    return lines


@pytest.mark.parametrize("name", NAMES)
def test_release_carries_the_configured_address_and_no_placeholder(name):
    config = course_config.load()
    release = ASSIGNMENTS[name].release
    text = release.read_text()
    assert "course repository URL" not in text and "<course" not in text, f"a placeholder is left in {release}"
    nb = nbformat.read(release, as_version=4)
    (setup,) = [cell for cell in nb.cells if course_config.is_setup_cell(cell)]
    assert f'COURSE_REPO = "{config.repository}"' in setup.source and f'COURSE_BRANCH = "{config.branch}"' in setup.source
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code[0] is setup, "the setup cell must be the notebook's first code cell (in Colab it installs otter)"
    assert code[1].source.startswith("# Initialize Otter"), "otter's init cell comes right after the setup cell"


def test_readme_table_follows_the_config():
    from autograder.assignments import ROOT

    table = course_config.readme_table(course_config.load(), ASSIGNMENTS.values())
    assert table in (ROOT / "README.md").read_text(), "README's Open in Colab table is stale: run make release"
    assert table.count("colab-badge.svg") == len(ASSIGNMENTS)


@pytest.mark.parametrize("name", NAMES)
def test_release_contains_no_solution_and_no_hidden_test(name):
    assignment = ASSIGNMENTS[name]
    notebook = assignment.release.read_text()
    code = "\n".join("".join(c["source"]) for c in json.loads(notebook)["cells"] if c["cell_type"] == "code")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "# SOLUTION", "BEGIN TESTS", "TEST CONFIG", "BEGIN QUESTION"):
        assert marker not in notebook, f"{marker!r} reached {assignment.release}"
    leaked = [line for line in _solution_lines(name) if line in code]
    assert not leaked, f"solution code reached the student notebook: {leaked[:5]}"
    for question, tests in load(name).tests.items():
        for test in tests:
            if test.hidden:
                assert test.name not in notebook, f"hidden test {test.name} ({question}) reached the student notebook"


# Words that belong to the build and its history, not to a student's work: where and how the course was built, what
# the graders know, earlier versions. A student reads the markdown and the comments; both must be free of them.
BUILD_WORDS = re.compile(
    r"\bmachine\b|\bcommit|`make |\bmake (release|env|test|mutation|student-path|grade)\b|reference run|\bprevious\b"
    r"|2-core|graders? know|hidden tests read|README|not measured|when this was written|\|\s*before:", re.I)


def _student_prose(notebook):
    """(cell index, line) for every markdown line and every code comment of a notebook."""
    for index, cell in enumerate(notebook["cells"]):
        for line in "".join(cell["source"]).splitlines():
            if cell["cell_type"] == "markdown":
                yield index, line
            elif cell["cell_type"] == "code" and "#" in line:
                yield index, line[line.index("#"):]


@pytest.mark.parametrize("name", NAMES)
def test_release_speaks_to_students_not_about_the_build(name):
    notebook = json.loads(ASSIGNMENTS[name].release.read_text())
    found = [f"cell {index}: {line.strip()[:120]}" for index, line in _student_prose(notebook) if BUILD_WORDS.search(line)]
    assert not found, f"{ASSIGNMENTS[name].release} speaks about the build:\n" + "\n".join(found)


def test_build_words_are_caught():
    caught = ["on the course's 2-core machine", "the previous graded model", "see the course README",
              "which the graders know", "(the hidden tests read the weights from them)", "| before: 200 tokens | 85% |",
              "written by make release (course.toml)", "not measured: no GPU was available when this was written"]
    assert all(BUILD_WORDS.search(line) for line in caught)
    fine = ["Make sure you have run all cells", "the character before", "a reference to the tensor", "make sure"]
    assert not any(BUILD_WORDS.search(line) for line in fine)


def _points_label(name, question):
    """The line a question's text ends with: its points, public and hidden, resolved from its tests as otter does."""
    from otter.test_files.abstract_test import TestCase, TestFile

    master = load(name)
    cases = [TestCase(t.name, None, t.hidden, t.points, None, None) for t in master.tests[question]]
    resolved = TestFile.resolve_test_file_points(master.points[question], cases)
    public = sum(case.points for case in resolved if not case.hidden)
    hidden = sum(case.points for case in resolved if case.hidden)
    total = public + hidden
    return f"**({total:g} point{'s' if total != 1 else ''}: {public:g} public, {hidden:g} hidden)**"


@pytest.mark.parametrize("name", NAMES)
def test_each_question_shows_the_points_its_tests_give(name):
    """The last markdown cell before each question states its points as the tests give them, and no other points
    label is left in the notebook (a stale one after a test config changed)."""
    import jupytext

    from autograder.assignments import ROOT

    cells = jupytext.read(ROOT / "solutions" / name / f"{name}.py").cells
    expected, markdown = [], None
    for cell in cells:
        if cell.cell_type == "markdown":
            markdown = cell.source
        elif cell.cell_type == "raw" and cell.source.lstrip("# ").upper().startswith("BEGIN QUESTION"):
            question = re.search(r"^name:\s*(\S+)", cell.source, re.M)[1]
            label = _points_label(name, question)
            assert markdown is not None and markdown.rstrip().endswith(label), (
                f"{name} {question}: the markdown before the question must end with {label}")
            expected.append(label)
    stated = re.findall(r"\*\*\(\d+(?:\.\d+)? points?: [^)]*\)\*\*", "\n".join(c.source for c in cells if c.cell_type == "markdown"))
    assert stated == expected, f"{name}: points labels {stated} do not match the questions' {expected}"


def test_gradescope_requirements_pin_the_repository_versions():
    """The grading image gets the same library versions as the course environment, and Python 3.11."""
    import re

    from autograder.assignments import ASSIGNMENTS, ROOT

    def pins(path):
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.M))

    repo, gradescope = pins(ROOT / "requirements.txt"), pins(ROOT / "autograder" / "requirements.txt")
    unpinned = [line for line in (ROOT / "autograder" / "requirements.txt").read_text().splitlines()
                if line and not line.startswith(("#", "--")) and "==" not in line]
    assert not unpinned, f"unpinned Gradescope requirements: {unpinned}"
    assert {name: repo.get(name) for name in gradescope} == gradescope
    for name in ASSIGNMENTS:
        assert '# python_version: "3.11"' in (ROOT / "solutions" / name / f"{name}.py").read_text(), name


def test_the_zips_time_limits_leave_gradescope_time_to_report():
    """Gradescope ends grading at 10 minutes with no results at all, so the budgets a submission can use up (all
    cells, all calls from the tests, the tests of the exported files) and the grader's own work must end by the
    supervisor's deadline, which leaves a minute to spare."""
    from autograder.sandbox.limits import Limits
    from autograder.sandbox.supervisor import READY_TIMEOUT_S

    limits = Limits()
    assert limits.cell_timeout_s <= limits.notebook_timeout_s and limits.call_timeout_s <= limits.tests_timeout_s
    start_up_s = 30  # two Python processes importing torch at 0.5 vCPU (READY_TIMEOUT_S allows a loaded machine more)
    assert start_up_s + limits.notebook_timeout_s + limits.after_cells_s() <= limits.deadline_s <= 600 - 60
    assert READY_TIMEOUT_S < limits.deadline_s


def test_the_zip_is_graded_by_the_course_supervisor_and_nothing_of_otters(reference_zip):
    """The zip's entry point is the repository's, byte for byte (`make grade` runs the same file), and otter's grading
    entry point is gone from it."""
    from autograder.build import SANDBOX

    with zipfile.ZipFile(ASSIGNMENTS["a1_tfidf"].zip_path) as zf:
        names = set(zf.namelist())
        assert zf.read("run_autograder") == (SANDBOX / "run_autograder").read_bytes()
        assert zf.getinfo("run_autograder").external_attr >> 16 & 0o111, "run_autograder must be executable"
        assert zf.read("supervise.py") == (SANDBOX / "supervise.py").read_bytes()
        manifest = json.loads(zf.read("grading.json"))
    assert "run_otter.py" not in names and not any(name.startswith("files/") for name in names)
    assert {f"sandbox/{path.name}" for path in SANDBOX.glob("*.py") if path.name != "supervise.py"} <= names
    assert {"course/grading.py", "grading_data/imdb_test_ids_10000.npz"} <= names
    assert not any(name.startswith("course/") and name.rsplit("/", 1)[-1] in ("remote.py", "otter_plugin.py")
                   for name in names), "the grading runtime is not the students' library"
    points = {q["name"]: sum(c["points"] for c in q["cases"]) for q in manifest["questions"]}
    assert points == {q: load("a1_tfidf").points[q] for q in load("a1_tfidf").tests}
