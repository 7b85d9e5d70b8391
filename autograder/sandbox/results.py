"""results.json, in Gradescope's format, made from the zip's own list of questions and the test process's verdicts.

Questions, test cases, points and visibility come from grading.json (written when the zip was built); a verdict
only says whether a case passed and why not. Until a case has a verdict it counts 0 with the reason grading has not
reached it, so that the file is complete whenever it is written: first at the start, then at the end.
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
from pathlib import Path

MAX_OUTPUT = 20_000  # characters of the top-level message


HIDDEN_VISIBILITIES = ("after_published", "after_due_date", "hidden", "visible")
SUBMISSION_CHECK = "Submission check"


class Results:
    """Every question becomes up to two Gradescope entries: its public checks (visible at once: students can run
    them in the notebook anyway) and its hidden tests (`hidden_visibility` of grading.json: after_published unless
    the course says otherwise in course.toml). A first, 0-point entry, the submission check, tells the student at
    once what was graded and what went wrong on the way. Outputs are Markdown."""

    def __init__(self, config: dict):
        self.questions = config["questions"]
        visibility = config.get("hidden_visibility", config.get("visibility", "after_published"))
        self.hidden_visibility = visibility if visibility in HIDDEN_VISIBILITIES else "after_published"
        self.leaderboard_enabled = bool(config.get("leaderboard", False))
        self.leaderboard_entries = {entry["name"]: entry for entry in config.get("leaderboard_entries", [])}
        self.verdicts: dict[tuple[str, str], tuple[bool, str]] = {}
        # what a case says until it has a verdict: if this is what results.json still says, grading was ended from
        # outside (Gradescope's time limit) or the grader itself failed
        self.pending = ("❌ Not graded: grading was stopped before this test ran (by Gradescope's time limit, or a "
                        "failure of the grader: please tell the course staff)")
        self.notes: list[str] = []  # for the student, at the top and in the submission check
        self.graded_files: list[str] = []  # what the submission check lists as graded
        self.for_people: list[str] = []  # files of the submission the course staff read (written answers)
        self.leaderboard: dict[str, float] = {}
        self.lock = threading.RLock()

    def verdict(self, question: str, case: str, passed: bool, message: str) -> None:
        with self.lock:
            if any(q["name"] == question and any(c["name"] == case for c in q["cases"]) for q in self.questions):
                self.verdicts[question, case] = bool(passed), str(message)

    def post(self, name: str, value) -> None:
        """A leaderboard value, kept only for an entry grading.json declares and a finite number."""
        with self.lock:
            if name in self.leaderboard_entries and isinstance(value, (int, float)) and math.isfinite(value):
                self.leaderboard[name] = float(value)

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

    def _case(self, question: dict, case: dict) -> tuple[bool, str]:
        return self.verdicts.get((question["name"], case["name"]), (False, self.pending))

    def _entry(self, question: dict, cases: list[dict], hidden: bool) -> dict:
        score, parts, all_passed = 0.0, [], True
        for case in cases:
            passed, message = self._case(question, case)
            score += case["points"] if passed else 0
            all_passed &= passed
            points = f"{case['points']:g} point{'s' if case['points'] != 1 else ''}"
            parts.append(f"**{case['name']}** ({points}): " + ("✅ passed" if passed else
                                                                _markdown_block(message.strip())))
        max_score = sum(c["points"] for c in cases)
        kind = "hidden tests" if hidden else "public checks"
        return {"name": f"{question['name']}: {kind}", "score": round(score, 5), "max_score": round(max_score, 5),
                "status": "passed" if all_passed else "failed",
                "visibility": self.hidden_visibility if hidden else "visible", "output": "\n\n".join(parts),
                "output_format": "md", "extra_data": {"question": question["name"], "hidden": hidden}}

    def submission_check(self) -> dict:
        """The 0-point entry students see at once: what was graded, what was left out, what went wrong."""
        lines = []
        if self.graded_files:
            lines.append("**Graded:** " + ", ".join(f"`{name}`" for name in self.graded_files))
        if self.for_people:
            lines.append("**For the course staff** (graded by hand): " + ", ".join(f"`{n}`" for n in self.for_people))
        lines += self.notes
        file_checks = []
        for question in self.questions:
            for case in question["cases"]:
                if not case.get("hidden") and not case["needs_notebook"]:
                    passed, message = self._case(question, case)
                    last = [line for line in message.strip().splitlines() if line.strip()][-1:] or ["❌"]
                    file_checks.append(f"- {question['name']} / {case['name']}: " +
                                       ("✅ passed" if passed else f"❌ {last[0].strip().lstrip('❌ ')[:300]}"))
        if file_checks:
            lines.append("**Your exported files:**\n" + "\n".join(file_checks))
        public = [(q, c) for q in self.questions for c in q["cases"] if not c.get("hidden")]
        failed = [f"{q['name']} / {c['name']}" for q, c in public if not self._case(q, c)[0]]
        lines.append(f"**Public checks:** {len(public) - len(failed)} of {len(public)} passed" +
                     (" (" + ", ".join(failed[:12]) + (", …" if len(failed) > 12 else "") + ")" if failed else "") +
                     ". Hidden tests are graded now and shown when the course staff release them.")
        if any((q["name"], c["name"]) not in self.verdicts for q in self.questions for c in q["cases"]):
            lines.append("**Grading has not finished** (or was stopped): tests without a result score 0.")
        problems = bool(self.notes) or bool(failed)
        return {"name": SUBMISSION_CHECK, "score": 0, "max_score": 0, "visibility": "visible",
                "status": "failed" if problems else "passed", "output": "\n\n".join(lines), "output_format": "md",
                "extra_data": {"question": None}}

    def as_gradescope(self) -> dict:
        with self.lock:
            tests = [self.submission_check()]
            for question in self.questions:
                for hidden in (False, True):
                    cases = [c for c in question["cases"] if bool(c.get("hidden")) == hidden]
                    if cases:
                        tests.append(self._entry(question, cases, hidden))
            output = "\n\n".join(self.notes)
            if len(output) > MAX_OUTPUT:
                output = output[:MAX_OUTPUT - 1] + "…"
            results = {"tests": tests, "stdout_visibility": "hidden", "output_format": "md",
                       "test_output_format": "md"}
            if output:
                results["output"] = output
            if self.leaderboard_enabled:
                board = [{"name": name, "value": round(self.leaderboard[name], 6),
                          "order": entry.get("order", "desc")}
                         for name, entry in self.leaderboard_entries.items() if name in self.leaderboard]
                if board:
                    results["leaderboard"] = board
            return results

    def write(self, path: Path) -> None:
        with self.lock:
            write_atomically(path, json.dumps(self.as_gradescope(), indent=2))


def _markdown_block(text: str) -> str:
    """`text` as a fenced code block, its fence longer than any run of backticks inside (a message cannot close it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"\n{fence}\n{text}\n{fence}"


def write_atomically(path: Path, text: str) -> None:
    """Gradescope (or `make grade`, reading after a kill) never reads half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
