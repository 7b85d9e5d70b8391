"""results.json, in Gradescope's format, made from the zip's own list of questions and the test process's verdicts.

Questions, test cases, points and visibility come from grading.json (written when the zip was built); a verdict
only says whether a case passed and why not. Until a case has a verdict it counts 0 with the reason grading has not
reached it, so that the file is complete whenever it is written: first at the start, then at the end.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from textwrap import indent

MAX_OUTPUT = 20_000  # characters of the top-level message


class Results:
    def __init__(self, config: dict):
        self.questions = config["questions"]
        self.visibility = config.get("visibility", "after_published")
        self.verdicts: dict[tuple[str, str], tuple[bool, str]] = {}
        # what a case says until it has a verdict: if this is what results.json still says, grading was ended from
        # outside (Gradescope's time limit) or the grader itself failed
        self.pending = ("❌ Not graded: grading was stopped before this test ran (by Gradescope's time limit, or a "
                        "failure of the grader: please tell the course staff)")
        self.notes: list[str] = []  # for the student, at the top
        self.lock = threading.RLock()

    def verdict(self, question: str, case: str, passed: bool, message: str) -> None:
        with self.lock:
            if any(q["name"] == question and any(c["name"] == case for c in q["cases"]) for q in self.questions):
                self.verdicts[question, case] = bool(passed), str(message)

    def fail_missing(self, message: str, needs_notebook: bool | None = None) -> None:
        """Every case without a verdict (of those that need the notebook, or do not, or all) fails with `message`."""
        with self.lock:
            for question in self.questions:
                for case in question["cases"]:
                    if (question["name"], case["name"]) not in self.verdicts and \
                            (needs_notebook is None or case["needs_notebook"] == needs_notebook):
                        self.verdicts[question["name"], case["name"]] = False, message

    def note(self, text: str) -> None:
        with self.lock:
            if text and text not in self.notes:
                self.notes.append(text)

    def as_gradescope(self) -> dict:
        with self.lock:
            tests = []
            for question in self.questions:
                score, lines, all_passed = 0.0, [], True
                for case in question["cases"]:
                    passed, message = self.verdicts.get((question["name"], case["name"]), (False, self.pending))
                    score += case["points"] if passed else 0
                    all_passed &= passed
                    lines.append(f"{case['name']} result:\n{indent(message.strip(), '    ')}")
                summary = (f"{question['name']} results: All test cases passed!" if all_passed else
                           f"{question['name']} results:\n" + indent("\n\n".join(lines), "    "))
                tests.append({"name": question["name"], "score": round(score, 5),
                              "max_score": round(sum(c["points"] for c in question["cases"]), 5),
                              "visibility": self.visibility, "output": summary})
            output = "\n\n".join(self.notes)
            if len(output) > MAX_OUTPUT:
                output = output[:MAX_OUTPUT - 1] + "…"
            results = {"tests": tests, "stdout_visibility": "hidden"}
            if output:
                results["output"] = output
            return results

    def write(self, path: Path) -> None:
        with self.lock:
            write_atomically(path, json.dumps(self.as_gradescope(), indent=2))


def write_atomically(path: Path, text: str) -> None:
    """Gradescope (or `make grade`, reading after a kill) never reads half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
