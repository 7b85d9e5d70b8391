"""nbgrader support (autograder/nbgrader_build.py): assignment 1 goes through nbgrader generate_assignment
and nbgrader autograde; the reference scores full marks, the stub zero, and the release shows no
solution and no hidden test."""
import nbformat
import pytest
from otter.test_files import abstract_test as otter_tests  # (not `import TestCase`: pytest would try to collect it)

from autograder.assignments import ASSIGNMENTS, BUILD
from autograder.build import _source_key, otter_assign, run_reference
from autograder.nbgrader_build import build, convert_solution_code, resolve_points, source_notebook
from autograder.masters import load

A1 = ASSIGNMENTS["a1_tfidf"]
FULL = 18


@pytest.fixture(scope="module")
def a1_course(tmp_path_factory):
    reference = BUILD / A1.name / "reference"
    key = reference / "source-key.txt"
    if not (reference / f"{A1.name}-reference.zip").exists() or not key.exists() or key.read_text() != _source_key(A1):
        run_reference(A1, otter_assign(A1))  # trains the reference weights (about 30 s on CPU), as test_grading does
    root = tmp_path_factory.mktemp("nbgrader")
    return root, build(A1, root)


def test_reference_full_marks_and_stub_zero(a1_course):
    _, result = a1_course
    assert result.max_score == FULL
    assert result.reference == FULL, result
    assert result.stub == 0, result


def test_release_shows_no_solution_and_no_hidden_test(a1_course):
    root, _ = a1_course
    released = (root / "release" / A1.name / f"{A1.name}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in released and "HIDDEN TESTS" not in released
    assert "ranked = sorted(counts.items()" not in released  # a line of the reference build_vocabulary
    assert "raise NotImplementedError()" in released
    tests = [t for tests in load(A1.name).tests.values() for t in tests]
    for test in tests:
        assert (test.name in released) != test.hidden, f"{test.name} (hidden={test.hidden})"
    nb = nbformat.reads(released, as_version=4)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    assert len(graded) == len(tests)  # one locked test cell per test, hidden ones emptied but kept
    assert all(c.metadata["nbgrader"]["locked"] for c in graded)
    assert sum(c.metadata["nbgrader"]["points"] for c in graded) == FULL
    # written answers: manually graded answer cells with the master's points; the rubric stays in the source
    manual = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
              if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")}
    written = load(A1.name).written
    assert {name: c.metadata["nbgrader"]["points"] for name, c in manual.items()} == \
        {w["name"]: w["points"] for w in written} and written
    assert all(c.metadata["nbgrader"]["solution"] and "YOUR ANSWER HERE" in c.source for c in manual.values())
    assert not any(w["rubric"][:60] in released for w in written), "a rubric hint reached the release"


def test_solution_markers_become_nbgrader_regions():
    source = "\n".join([
        "def f(x):",
        '    """ # BEGIN PROMPT',
        "    y = ...",
        '    """ # END PROMPT',
        "    # BEGIN SOLUTION NO PROMPT",
        "    y = x + 1  # SOLUTION",
        "    # END SOLUTION",
        "    return y",
        "a = 1  # SOLUTION",
        "b = [  # SOLUTION",
        "    2,  # SOLUTION NO PROMPT",
        "]  # SOLUTION NO PROMPT",
        "c = 3",
    ])
    converted, has_solution = convert_solution_code(source)
    assert has_solution
    assert converted.split("\n") == [
        "def f(x):",
        "    # y = ...",
        "    ### BEGIN SOLUTION",
        "    y = x + 1",
        "    ### END SOLUTION",
        "    return y",
        "### BEGIN SOLUTION",
        "a = 1",
        "b = [",
        "    2,",
        "]",
        "### END SOLUTION",
        "c = 3",
    ]
    assert convert_solution_code("x = 1  # not a solution marker\n") == ("x = 1  # not a solution marker\n", False)


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_points_follow_otters_rule(name):
    master = load(name)
    for question, tests in master.tests.items():
        cases = [otter_tests.TestCase(t.name, t.source, t.hidden, t.points, None, None) for t in tests]
        expected = [tc.points for tc in otter_tests.TestFile.resolve_test_file_points(master.points[question], cases)]
        assert resolve_points(master.points[question], tests) == pytest.approx(expected), question
    nb = source_notebook(ASSIGNMENTS[name])
    grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(grade_ids) == len(set(grade_ids))
    graded = sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert graded == pytest.approx(sum(master.points.values()) + sum(w["points"] for w in master.written))
