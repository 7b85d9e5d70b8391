"""Written answers: the questions a person grades, and the file that carries them to the graders.

In a notebook, each written answer is a markdown cell tagged `written_answer` whose metadata names its question:

    {"tags": ["written_answer"], "written_answer": {"name": "q8_why_negative", "points": 2}}

The prompt is the first paragraph of the markdown just above it. The export cell calls `save_written_answers`, which writes
NAME_written_answers.md (each answer under its question's heading) next to the notebook, and that file goes into the
submission zip: on Gradescope graders read it in the manual-grading view; `make grade-all` gathers every student's
answer to one question into one document.
"""
from __future__ import annotations

import json
from pathlib import Path

TAG = "written_answer"
PLACEHOLDER = "_Type your answer here, replacing this text._"


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def written_questions(notebook: dict) -> list[dict]:
    """[{name, points, prompt, answer}] in notebook order; `answer` is "" when the student left the placeholder."""
    found, cells = [], notebook.get("cells", [])
    for index, cell in enumerate(cells):
        meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
        info = meta.get(TAG)
        if cell.get("cell_type") != "markdown" or TAG not in meta.get("tags", []) or not isinstance(info, dict):
            continue
        prompt = next((_source(cells[i]) for i in range(index - 1, -1, -1) if cells[i].get("cell_type") == "markdown"),
                      "")
        answer = _source(cell).replace(PLACEHOLDER, "").strip()
        found.append({"name": str(info.get("name", f"written_{len(found) + 1}")), "points": info.get("points"),
                      "prompt": prompt.strip().split("\n\n")[0], "answer": answer})  # the question, not how to submit
    return found


def answers_markdown(title: str, questions: list[dict]) -> str:
    """The answers file: each answer under its question's heading (name and points), the prompt quoted above it."""
    lines = [f"# Written answers: {title}", ""]
    for question in questions:
        points = question.get("points")
        lines.append(f"## {question['name']}" + (f" ({points:g} points)" if isinstance(points, (int, float)) else ""))
        lines.append("")
        if question.get("prompt"):
            lines += ["> " + line for line in question["prompt"].splitlines()] + [""]
        lines.append(question["answer"] if question.get("answer") else "*(no answer)*")
        lines.append("")
    return "\n".join(lines)


def answers_file_name(assignment: str) -> str:
    return f"{assignment}_written_answers.md"


def save_written_answers(notebook_path: str | Path, assignment: str | None = None) -> Path:
    """Write ASSIGNMENT_written_answers.md next to the saved notebook and say which answers are still empty.
    Save the notebook first (the answers are read from the file)."""
    path = Path(notebook_path)
    assignment = assignment or path.stem
    questions = written_questions(json.loads(path.read_text(encoding="utf-8")))
    target = path.with_name(answers_file_name(assignment))
    target.write_text(answers_markdown(assignment, questions), encoding="utf-8")
    empty = [q["name"] for q in questions if not q["answer"]]
    print(f"wrote {target.name}: {len(questions) - len(empty)} of {len(questions)} written answers"
          + (f"; still empty: {', '.join(empty)} (save the notebook after writing them)" if empty else ""))
    return target


def add_to_export(nb_path: str | Path, assignment: str, files: list | None) -> list:
    """The files for otter's export, with the written answers file (written now from the saved notebook) when the
    notebook has written questions."""
    files = list(files or [])
    path = Path(nb_path)
    if not path.exists() or not written_questions(json.loads(path.read_text(encoding="utf-8"))):
        return files
    name = save_written_answers(path, assignment).name
    return files if name in files else [*files, name]


def enable_export(assignment: str) -> None:
    """Make `grader.export(...)` put the written answers file into the submission zip (outside Colab; in Colab
    course.colab's export does the same from the live notebook)."""
    import sys

    if "google.colab" in sys.modules:
        return
    try:
        from otter.check.notebook import Notebook
    except ImportError:
        return
    if getattr(Notebook.export, "course_written", False):
        return
    otter_export = Notebook.export

    def export(self, nb_path=None, export_path=None, *args, files=None, force_save=False, **options):
        path = nb_path or f"{assignment}.ipynb"
        if force_save:
            from otter.check.utils import save_notebook

            save_notebook(path)
        files = add_to_export(path, assignment, files)
        return otter_export(self, nb_path, export_path, *args, files=files, **options)

    export.course_written = True
    Notebook.export = export
