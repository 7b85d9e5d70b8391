"""Written answers by question: graded/written/QUESTION.md (and .html) holds every student's answer to one question,
so that a grader reads them all in one sitting.

Answers are read from each submission's notebook with `course.written.written_questions` (markdown cells tagged
`written_answer`). Under the question's prompt and points, each submission has a heading with its students' names
and SIDs; an empty answer (the placeholder left, or nothing) is flagged, and so is a submission whose notebook could
not be read or lacks the question. Students' Markdown is shown as written; in the HTML, raw HTML in it is escaped.
"""
from __future__ import annotations

import html
import json
import zipfile
from pathlib import Path

from autograder.assignments import Assignment
from autograder.feedback import STYLE, slug

NO_ANSWER = "**NO ANSWER** (empty, or the placeholder left)"
NO_NOTEBOOK = "**NO NOTEBOOK** (the submission's notebook could not be read)"
NO_QUESTION = "**QUESTION MISSING** (this notebook has no cell for this question)"


def read_notebook(path: str, assignment: Assignment) -> dict | None:
    """The submission's notebook as JSON (inside a zip too), or None."""
    try:
        if path.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                names = sorted((n for n in zf.namelist() if n.endswith(".ipynb") and "checkpoint" not in n),
                               key=lambda n: Path(n).stem != assignment.name)
                return json.loads(zf.read(names[0])) if names else None
        return json.loads(Path(path).read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
        return None


def who(record: dict) -> str:
    people = record.get("submitters") or [{"name": record["key"], "sid": ""}]
    return ", ".join(f"{p.get('name') or record['key']}" + (f" ({p['sid']})" if p.get("sid") else "") for p in people)


def collect(assignment: Assignment, graded: list[dict]) -> tuple[dict[str, dict], list[tuple[dict, dict | None]]]:
    """The questions (name -> {points, prompt}, in notebook order) and each submission's answers by question."""
    from course.written import written_questions

    questions: dict[str, dict] = {}
    answers = []
    for record in graded:
        notebook = read_notebook(record.get("path", ""), assignment)
        found = written_questions(notebook) if isinstance(notebook, dict) else None
        for q in found or []:
            questions.setdefault(q["name"], {"points": q["points"], "prompt": q["prompt"]})
        answers.append((record, {q["name"]: q["answer"] for q in found} if found is not None else None))
    return questions, answers


def question_markdown(assignment: Assignment, name: str, question: dict, answers) -> str:
    points = question.get("points")
    lines = [f"# {assignment.name}: {name}" + (f" ({points:g} points)" if isinstance(points, (int, float)) else ""),
             ""]
    if question.get("prompt"):
        lines += ["> " + line for line in question["prompt"].splitlines()] + [""]
    empty = sum(1 for _, a in answers if not (a or {}).get(name))
    lines += [f"{len(answers)} submissions, {empty} without an answer.", ""]
    for record, by_question in sorted(answers, key=lambda ra: who(ra[0]).lower()):
        lines += ["---", "", f"## {who(record)}", "", f"_submission {record['key']}_", ""]
        if by_question is None:
            lines.append(NO_NOTEBOOK)
        elif name not in by_question:
            lines.append(NO_QUESTION)
        else:
            lines.append(by_question[name] or NO_ANSWER)
        lines.append("")
    return "\n".join(lines)


def question_html(assignment: Assignment, name: str, question: dict, answers) -> str:
    import mistune

    render = mistune.create_markdown(escape=True)
    e = html.escape
    points = question.get("points")
    title = f"{assignment.name}: {name}" + (f" ({points:g} points)" if isinstance(points, (int, float)) else "")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{STYLE}"
             "blockquote{color:#444;border-left:4px solid #ccc;margin:0;padding-left:1rem}"
             ".flag{background:#fde8e8;padding:.3rem}.answer{margin-bottom:2rem}</style></head><body>"
             f"<h1>{e(title)}</h1>"]
    if question.get("prompt"):
        parts.append(f"<blockquote>{render(question['prompt'])}</blockquote>")
    for record, by_question in sorted(answers, key=lambda ra: who(ra[0]).lower()):
        if by_question is None or name not in by_question or not by_question[name]:
            flag = NO_NOTEBOOK if by_question is None else NO_QUESTION if name not in by_question else NO_ANSWER
            body = f"<p class='flag'>{render(flag)}</p>"
        else:
            body = render(by_question[name])
        parts.append(f"<div class='answer'><h2>{e(who(record))}</h2><p><i>submission {e(record['key'])}</i></p>"
                     f"{body}</div><hr>")
    return "".join(parts) + "</body></html>\n"


def write_all(out_dir: Path, assignment: Assignment, graded: list[dict]) -> list[Path]:
    questions, answers = collect(assignment, graded)
    if not questions:
        return []
    folder = Path(out_dir) / "written"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, question in questions.items():
        (folder / f"{slug(name)}.md").write_text(question_markdown(assignment, name, question, answers),
                                                 encoding="utf-8")
        (folder / f"{slug(name)}.html").write_text(question_html(assignment, name, question, answers),
                                                   encoding="utf-8")
        written.append(folder / f"{slug(name)}.md")
    return written
