"""Scores of a graded cohort as spreadsheets: scores.csv, and gradebooks a learning-management system imports.

One row per student: a submission by two students gives both of them its score.

* scores.csv: submission, name, sid, email, submitted_at, late, one column per question, total, max, error.
* gradebook-canvas.csv: Canvas's gradebook import layout (the layout of Canvas's own gradebook export):
  Student, ID, SIS User ID, SIS Login ID, Section, then one column per assignment, and a "Points Possible" row
  under the header. Gradescope's SID goes in SIS User ID; ID (Canvas's own user id), SIS Login ID and Section stay
  empty, which Canvas accepts (it matches a row on any of its identities, and lists the rows it cannot match).
  The assignment column is headed by the assignment's name: Canvas creates that assignment on import, or updates
  an existing one when the header is "Name (canvas-assignment-id)" as in an export of that gradebook.
* gradebook.csv: generic: sid, name, email, the assignment's score, max, late, submitted_at.
"""
from __future__ import annotations

import csv
from pathlib import Path

from autograder.assignments import Assignment

CANVAS_IDENTITY_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_ROW = "    Points Possible"  # as Canvas writes it in its export (leading spaces included)


def question_of(test: dict) -> str:
    """The question a results.json entry belongs to: entries split into public checks and hidden tests name it in
    extra_data; otherwise the entry is the question."""
    return str((test.get("extra_data") or {}).get("question") or test.get("name", ""))


def per_question(results: dict) -> dict[str, tuple[float, float]]:
    """(score, max) per question, summing a question's entries; 0-point entries of no question (the submission
    check) are left out."""
    scores: dict[str, list[float]] = {}
    for test in results.get("tests", []):
        if "score" not in test or (not float(test.get("max_score") or 0) and
                                   not (test.get("extra_data") or {}).get("question")):
            continue
        entry = scores.setdefault(question_of(test), [0.0, 0.0])
        entry[0] += float(test.get("score") or 0)
        entry[1] += float(test.get("max_score") or 0)
    return {q: (s, m) for q, (s, m) in scores.items()}


def question_maxima(assignment: Assignment, graded: list[dict]) -> dict[str, float]:
    """Points per question from the autograder zip, in its order; questions only results name come after."""
    from autograder.grade import question_points

    try:
        maxima = dict(question_points(assignment))
    except (OSError, KeyError, ValueError):
        maxima = {}
    for record in graded:
        for question, (_, top) in per_question(record["results"]).items():
            maxima.setdefault(question, top)
    return maxima


def scores_of(record: dict) -> dict[str, float]:
    """Points per question of one graded submission."""
    return {q: s for q, (s, _) in per_question(record["results"]).items()}


def student_rows(graded: list[dict], maxima: dict[str, float]) -> list[dict]:
    """One row per student (per submitter of each submission)."""
    rows = []
    for record in graded:
        scores = scores_of(record)
        total = round(sum(scores.get(q, 0.0) for q in maxima), 4)
        for person in record.get("submitters") or [{"name": record["key"], "sid": "", "email": ""}]:
            rows.append({"submission": record["key"], "name": person.get("name", ""), "sid": person.get("sid", ""),
                         "email": person.get("email", ""), "submitted_at": record.get("created_at", ""),
                         "late": "yes" if record.get("late") else "", "scores": scores, "total": total,
                         "max": sum(maxima.values()), "error": record.get("error", "")})
    return sorted(rows, key=lambda r: (r["name"].lower(), r["sid"], r["submission"]))


def _number(x: float) -> str:
    return f"{x:g}"


def write_all(out_dir: Path, assignment: Assignment, graded: list[dict]) -> list[Path]:
    maxima = question_maxima(assignment, graded)
    rows = student_rows(graded, maxima)
    out_dir = Path(out_dir)
    scores, canvas, generic = out_dir / "scores.csv", out_dir / "gradebook-canvas.csv", out_dir / "gradebook.csv"
    with open(scores, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "name", "sid", "email", "submitted_at", "late", *maxima, "total", "max",
                         "error"])
        for row in rows:
            writer.writerow([row["submission"], row["name"], row["sid"], row["email"], row["submitted_at"], row["late"],
                             *[_number(row["scores"].get(q, 0.0)) for q in maxima], _number(row["total"]),
                             _number(row["max"]), row["error"]])
    with open(canvas, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*CANVAS_IDENTITY_COLUMNS, assignment.name])
        writer.writerow([CANVAS_POINTS_ROW, "", "", "", "", _number(sum(maxima.values()))])
        for row in rows:
            writer.writerow([row["name"], "", row["sid"], "", "", _number(row["total"])])
    with open(generic, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sid", "name", "email", assignment.name, "max", "late", "submitted_at"])
        for row in rows:
            writer.writerow([row["sid"], row["name"], row["email"], _number(row["total"]), _number(row["max"]),
                             row["late"], row["submitted_at"]])
    return [scores, canvas, generic]
