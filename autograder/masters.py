"""Read a master (jupytext percent format with otter-assign markers) without otter.

Used by the nbgrader build, and by the test suite to run each question's tests, public and hidden, against the reference
solution and against deliberately wrong variants ("mistakes") in milliseconds, with no kernel.
Tests run as otter runs them: each test function is defined in a fresh namespace and receives
the notebook's globals by parameter name.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parents[1]
_TEST_CONFIG = re.compile(r'^\s*"""\s*#\s*BEGIN TEST CONFIG(.*?)"""\s*#\s*END TEST CONFIG\s*\n', re.S)


@dataclass
class TestSource:
    name: str
    source: str
    hidden: bool
    points: float | None


@dataclass
class Master:
    name: str
    solution_cells: list[str] = field(default_factory=list)  # graded code, in order (not otter_ignore)
    solution_questions: list[str | None] = field(default_factory=list)  # the question of each solution cell, or None
    other_cells: list[str] = field(default_factory=list)  # markdown and not-graded code (data, training, plots)
    code_cells: list[str] = field(default_factory=list)  # every code cell but the tests': what training depends on
    tests: dict[str, list[TestSource]] = field(default_factory=dict)  # question -> tests
    points: dict[str, float] = field(default_factory=dict)
    # written answers graded by people: [{name, points, prompt, rubric}] (course.written; rubric cells never ship)
    written: list[dict] = field(default_factory=list)


def _raw_marker(source: str) -> str:
    first = source.strip().splitlines()[0] if source.strip() else ""
    return re.sub(r"\s+", " ", first.lstrip("# ").strip()).upper()


@lru_cache(maxsize=None)
def load(name: str) -> Master:
    nb = jupytext.read(ROOT / "solutions" / name / f"{name}.py")
    master, question, in_tests = Master(name), None, False
    for cell in nb.cells:
        if cell.cell_type == "raw":
            marker = _raw_marker(cell.source)
            if marker == "BEGIN QUESTION":
                config = yaml.safe_load("\n".join(cell.source.splitlines()[1:]))
                question = config["name"]
                master.points[question] = config.get("points")
                master.tests[question] = []
            elif marker == "END QUESTION":
                question = None
            elif marker == "BEGIN TESTS":
                in_tests = True
            elif marker == "END TESTS":
                in_tests = False
            continue
        if cell.cell_type != "code":
            tags = cell.metadata.get("tags", [])
            if "written_answer" in tags:
                info = cell.metadata.get("written_answer", {})
                prompt = next((c for c in reversed(master.other_cells) if c.strip()), "")
                master.written.append({"name": info["name"], "points": info["points"],
                                       "prompt": prompt.strip().split("\n\n")[0],
                                       "rubric": ""})
            elif "rubric" in tags and master.written:
                master.written[-1]["rubric"] = cell.source.strip()
                continue
            master.other_cells.append(cell.source)
            continue
        if not in_tests:
            master.code_cells.append(cell.source)
        if in_tests:
            source, hidden, points = cell.source, False, None
            match = _TEST_CONFIG.match(source)
            if match:
                config = yaml.safe_load(match.group(1)) or {}
                hidden, points = bool(config.get("hidden", False)), config.get("points")
                source = source[match.end():]
            test_name = re.search(r"^def (\w+)", source, re.M).group(1)
            master.tests[question].append(TestSource(test_name, source, hidden, points))
        elif "otter_ignore" not in cell.metadata.get("tags", []):
            master.solution_cells.append(cell.source)
            master.solution_questions.append(question)
        else:
            master.other_cells.append(cell.source)
    return master


def namespace(name: str, overrides: str = "") -> dict:
    """Globals of the reference solution's graded cells, then `overrides` (source) executed on top."""
    ns: dict = {"__name__": f"master_{name}"}
    for source in load(name).solution_cells:
        exec(compile(source, f"<{name}>", "exec"), ns)
    if overrides:
        exec(compile(overrides, f"<{name} override>", "exec"), ns)
    return ns


def run_test(test: TestSource, ns: dict) -> None:
    """Run one test as otter does; raises what the test raises."""
    env: dict = {}
    exec(compile(test.source, f"<test {test.name}>", "exec"), env)
    func = env[test.name]
    params = inspect.signature(func).parameters
    func(**{p: (ns if p == "env" else ns.get(p)) for p in params})


def reads_submitted_files(test: TestSource) -> bool:
    """Tests without parameters check exported files (weights), not notebook globals."""
    env: dict = {}
    exec(compile(test.source, f"<test {test.name}>", "exec"), env)
    return not inspect.signature(env[test.name]).parameters


def failures(name: str, question: str, ns: dict, skip=()) -> dict[str, str]:
    """{test name: error} for the tests of `question` that fail against `ns` (file tests are skipped)."""
    failed = {}
    for test in load(name).tests[question]:
        if test.name in skip or reads_submitted_files(test):
            continue
        try:
            run_test(test, ns)
        except Exception as error:  # noqa: BLE001 - any exception is a failed test, as in otter
            failed[test.name] = f"{type(error).__name__}: {error}"
    return failed

