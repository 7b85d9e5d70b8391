"""Google Colab: what otter-grader 7 does not do there, done for the course's notebooks.

In Colab the notebook lives in the browser, not on the runtime's disk, and otter knows it: `grader.check` then reads
its tests only from files in ./tests (never from the notebook's metadata, where the release notebooks keep their public
checks), and `grader.export` stops with "This method is not compatible with Google Colab". The notebook's setup cell
calls `setup` in Colab only, right after installing the course library and otter, and before `otter.Notebook()`:

  - the public checks go to ./tests, one file per question, from the notebook itself (as Colab's front end has it)
    or, when its metadata did not survive, from the release notebook in the course repository; and a copy of the
    notebook goes to ./NAME.ipynb, which otter's init cell, `otter.Notebook("NAME.ipynb")`, reads;
  - `grader.export(...)` first saves the notebook as the browser has it (NAME.ipynb beside the weights) and the
    written answers from it (NAME_written_answers.md, course.written), then makes otter's zip, and downloads it.

Grading never runs any of this: the setup cell is not graded. `make student-path` runs it against a stand-in for
`google.colab` (autograder/colab_stub).
"""
from __future__ import annotations

import datetime
import json
import subprocess
import tempfile
from pathlib import Path

TESTS_DIR = Path("tests")


def live_notebook(timeout_s: float = 60) -> dict:
    """The notebook as Colab's front end has it now (cells, outputs, metadata), as a dict in nbformat 4."""
    from google.colab import _message

    reply = _message.blocking_request("get_ipynb", request="", timeout_sec=timeout_s)
    if not isinstance(reply, dict) or not isinstance(reply.get("ipynb"), dict):
        raise RuntimeError("Colab did not send the notebook")
    return reply["ipynb"]


def _checks_of(notebook: dict) -> dict[str, str]:
    otter = (notebook.get("metadata") or {}).get("otter") or {}
    return {name: source for name, source in (otter.get("tests") or {}).items() if isinstance(source, str)}


def _release_notebook(assignment: str, repository: str, branch: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", branch, repository, folder],
                       check=True, capture_output=True, text=True, timeout=300)
        release = Path(folder) / "assignments" / assignment / f"{assignment}.ipynb"
        return json.loads(release.read_text(encoding="utf-8"))


def write_files(assignment: str, repository: str, branch: str, folder: Path = TESTS_DIR) -> str:
    """What otter needs on the runtime's disk in Colab: the public checks in ./tests (otter.Notebook() does not start
    without that folder) and a copy of the notebook, NAME.ipynb (otter.Notebook("NAME.ipynb") reads it). Returns where
    the checks came from."""
    folder.mkdir(exist_ok=True)
    notebook, origin = {}, "nowhere"
    try:
        notebook, origin = live_notebook(), "this notebook"
    except Exception:  # noqa: BLE001 - the repository's copy is the fallback
        pass
    if not _checks_of(notebook):
        try:
            notebook, origin = _release_notebook(assignment, repository, branch), f"{repository}@{branch}"
        except Exception as error:  # noqa: BLE001
            print(f"The public checks were not found ({type(error).__name__}: {error}): grader.check will say that "
                  "the test does not exist. Grading is not affected.")
    for name, source in _checks_of(notebook).items():
        (folder / f"{name}.py").write_text(source, encoding="utf-8")
    notebook = notebook or {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    Path(f"{assignment}.ipynb").write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")
    return origin


def enable_export(assignment: str) -> None:
    """Make `grader.export(...)` work in Colab: save the live notebook, zip it with otter, download the zip."""
    from otter.check.notebook import Notebook

    if getattr(Notebook.export, "course_colab", False):
        return
    otter_export = Notebook.export

    def export(self, nb_path=None, export_path=None, **options):
        path = f"{assignment}.ipynb"
        try:
            Path(path).write_text(json.dumps(live_notebook(), ensure_ascii=False), encoding="utf-8")
        except Exception as error:  # noqa: BLE001
            raise RuntimeError(f"Colab did not hand over the notebook ({error}). Submit by hand instead: File → Download "
                               "→ Download .ipynb, and download the weights file from the Files pane (left); submit "
                               "both files.") from None
        from .written import add_to_export

        options["files"] = add_to_export(path, assignment, options.get("files"))
        zip_path = export_path or f"{assignment}_{datetime.datetime.now():%Y_%m_%dT%H_%M_%S_%f}.zip"
        interpreter, self.interpreter = self.interpreter, None  # otter refuses Colab; it now has a notebook file
        try:
            otter_export(self, path, zip_path, **{**options, "display_link": False})
        finally:
            self.interpreter = interpreter
        from google.colab import files

        print(f"Exported {zip_path} (your notebook and the files it names). Your browser downloads it now; if it does "
              "not, find it in the Files pane on the left (right-click → Download). Submit that zip.")
        files.download(zip_path)

    export.course_colab = True
    Notebook.export = export


def setup(assignment: str, repository: str, branch: str) -> str:
    """Called by the setup cell in Colab, after installing the course library and otter; returns a one-line summary."""
    origin = write_files(assignment, repository, branch)
    enable_export(assignment)
    return f"public checks from {origin} in ./{TESTS_DIR}; grader.export downloads your submission zip"
