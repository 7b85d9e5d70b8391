"""The committed student releases are what the masters build, and contain no solution or hidden test."""
import json
import re

import pytest

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
    cells, all calls from the tests) must leave time for the rest. A submission that used up both was graded here
    in 435 s (a5: 300 + 120 s of budgets, 15.8 CPU-s of the grader's own work, about twice that at 0.5 vCPU)."""
    from autograder.build import _with_guard
    from course.otter_plugin import GRADESCOPE_TIMEOUT_S

    config = _with_guard({}, ASSIGNMENTS["a5_transformer"])["plugins"][-1]["course.otter_plugin.CourseGradingPlugin"]
    assert config["cell_timeout_s"] <= config["notebook_timeout_s"]
    assert config["call_timeout_s"] <= config["tests_timeout_s"]
    the_graders_own_work_s = 120  # starting kernels, the exported-weights tests: 15.8 CPU-s, about 32 s at 0.5 vCPU
    assert config["notebook_timeout_s"] + config["tests_timeout_s"] + the_graders_own_work_s <= GRADESCOPE_TIMEOUT_S
