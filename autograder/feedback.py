"""One feedback file per student, in Markdown and HTML: what Gradescope would show them, from results.json.

Every test is there, whatever its visibility on Gradescope (which is noted beside it): the TA sends or posts these
files knowing what each says. A submission by two students gives each of them a file.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from autograder.assignments import Assignment


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "submission"


def file_stem(record: dict, person: dict) -> str:
    """The student's feedback file name: name and SID, or the submission's name when there is no SID."""
    if person.get("sid"):
        return slug(f"{person.get('name', '')}_{person['sid']}")
    return slug(Path(record["key"]).stem if record["key"].endswith((".ipynb", ".zip")) else record["key"])


def fenced(text: str) -> list[str]:
    """`text` as a Markdown code block, whatever backticks it holds."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return [fence, text, fence]


def _is_markdown(results: dict, test: dict | None = None) -> bool:
    """Whether an output is Markdown (Gradescope's output_format "md"), not plain text."""
    if test is None:
        return results.get("output_format") == "md"
    return (test.get("output_format") or results.get("test_output_format")) == "md"


def _as_html(text: str, markdown: bool) -> str:
    """An output in HTML: Markdown rendered (raw HTML in it escaped), plain text preformatted."""
    if markdown:
        import mistune

        return mistune.create_markdown(escape=True)(text)
    return f"<pre>{html.escape(text)}</pre>"


def _tests(results: dict) -> list[dict]:
    return [t for t in results.get("tests", []) if "score" in t]


def feedback_markdown(assignment: Assignment, record: dict, person: dict) -> str:
    results = record["results"]
    tests = _tests(results)
    score = sum(float(t.get("score") or 0) for t in tests)
    total = sum(float(t.get("max_score") or 0) for t in tests)
    lines = [f"# {assignment.name}: {assignment.title}", "",
             f"- Student: {person.get('name') or record['key']}" + (f" (SID {person['sid']})" if person.get("sid") else ""),
             f"- Submission: {record['key']}"]
    if record.get("created_at"):
        lines.append(f"- Submitted: {record['created_at']}" + (" (late)" if record.get("late") else ""))
    lines += [f"- Score: **{score:g} / {total:g}**", ""]
    if (results.get("output") or "").strip():
        output = results["output"].strip()
        lines += ["## Autograder output", "", *([output] if _is_markdown(results) else fenced(output)), ""]
    lines += ["## Tests", "", "| Question | Score | Visibility |", "|---|---|---|"]
    lines += [f"| {t['name']} | {float(t.get('score') or 0):g} / {float(t.get('max_score') or 0):g} | "
              f"{t.get('visibility', 'visible')} |" for t in tests]
    for test in tests:
        lines += ["", f"### {test['name']}: {float(test.get('score') or 0):g} / {float(test.get('max_score') or 0):g}",
                  ""]
        output = (test.get("output") or "").strip() or "(no output)"
        lines += [output] if _is_markdown(results, test) else fenced(output)
    return "\n".join(lines) + "\n"


STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
         "pre{background:#f5f5f5;padding:.6rem;overflow-x:auto;white-space:pre-wrap}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .6rem;text-align:left}"
         ".pass{color:#17692b}.fail{color:#a11}")


def feedback_html(assignment: Assignment, record: dict, person: dict) -> str:
    results, e = record["results"], html.escape
    tests = _tests(results)
    score = sum(float(t.get("score") or 0) for t in tests)
    total = sum(float(t.get("max_score") or 0) for t in tests)
    who = e(person.get("name") or record["key"]) + (f" (SID {e(person['sid'])})" if person.get("sid") else "")
    when = (f"<li>Submitted: {e(record['created_at'])}{' (late)' if record.get('late') else ''}</li>"
            if record.get("created_at") else "")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(assignment.name)}: {who}</title>"
             f"<style>{STYLE}</style></head><body><h1>{e(assignment.name)}: {e(assignment.title)}</h1>",
             f"<ul><li>Student: {who}</li><li>Submission: {e(record['key'])}</li>{when}"
             f"<li>Score: <b>{score:g} / {total:g}</b></li></ul>"]
    if (results.get("output") or "").strip():
        parts.append(f"<h2>Autograder output</h2>{_as_html(results['output'].strip(), _is_markdown(results))}")
    rows = "".join(f"<tr class='{'pass' if float(t.get('score') or 0) >= float(t.get('max_score') or 0) else 'fail'}'>"
                   f"<td>{e(t['name'])}</td><td>{float(t.get('score') or 0):g} / {float(t.get('max_score') or 0):g}"
                   f"</td><td>{e(str(t.get('visibility', 'visible')))}</td></tr>" for t in tests)
    parts.append(f"<h2>Tests</h2><table><tr><th>Question</th><th>Score</th><th>Visibility</th></tr>{rows}</table>")
    for t in tests:
        parts.append(f"<h3>{e(t['name'])}: {float(t.get('score') or 0):g} / {float(t.get('max_score') or 0):g}</h3>"
                     + _as_html((t.get("output") or "").strip() or "(no output)", _is_markdown(results, t)))
    return "".join(parts) + "</body></html>\n"


def write_all(out_dir: Path, assignment: Assignment, graded: list[dict]) -> list[Path]:
    folder = Path(out_dir) / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for record in graded:
        for person in record.get("submitters") or [{"name": record["key"], "sid": "", "email": ""}]:
            stem = file_stem(record, person)
            (folder / f"{stem}.md").write_text(feedback_markdown(assignment, record, person), encoding="utf-8")
            (folder / f"{stem}.html").write_text(feedback_html(assignment, record, person), encoding="utf-8")
            written.append(folder / f"{stem}.md")
    return [folder] if written else []
