"""The submission is data: which of its files are graded, and the notebook's code cells.

An allowlist, not a list of dangers: the assignment's notebook and its declared student files (the exported
weights) are copied out of the submission, each a regular file of bounded size; nothing else is read, run or
kept, and the student is told in one line what was left out. The notebook is parsed as JSON in a child process
that has become the notebook's user and has little memory, so a malformed or enormous notebook fails there, with
a message, and never in the supervisor.
"""
from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import stat
from pathlib import Path

from .limits import Limits
from .users import KernelUser, _as_user

MAX_ENTRIES = 10_000  # entries of the submission folder looked at; the rest are only counted
LISTED = 12  # names of left-out files named in the message
IGNORE_TAG = "otter_ignore"  # cells the notebook marks as not graded (training, data, plots), as otter does


class Rejected(Exception):
    """The submission cannot be graded; the message tells the student what to submit instead."""


@dataclasses.dataclass
class Cell:
    number: int  # 1-based position among all the notebook's cells, as Jupyter shows them
    label: str  # its first line, shortened
    source: str


@dataclasses.dataclass
class Submission:
    notebook: Path  # the copy
    files: list[str]  # declared student files present (copied beside the notebook)
    notes: list[str]  # what the student should know about what was and was not graded
    unreadable: str | None = None  # why the notebook itself cannot be graded (its files still are)
    for_people: list[str] = dataclasses.field(default_factory=list)  # files the course staff read (written answers)


def collect(folder: Path, target: Path, notebook_name: str, student_files: list[str], limits: Limits,
            written_file: str | None = None) -> Submission:
    """Copy the graded files of the submission in `folder` into `target` (which exists). `written_file`, the
    written answers the export cell adds, is for people: acknowledged, never read."""
    entries, skipped = _entries(folder)
    chosen = _notebook_in(entries, notebook_name)
    notes, left_out, nested, for_people = [], [], None, []
    if chosen is None:
        folders = [entry for entry in entries if _kind(entry) == "folder"]
        if len(folders) == 1 and not any(_kind(entry) == "file" and entry.name.endswith(".ipynb") for entry in entries):
            inner, _ = _entries(Path(folders[0].path))  # a zip of a folder: one level down, not further
            if _notebook_in(inner, notebook_name) is not None:
                nested, entries = folders[0].name, inner
                chosen = _notebook_in(inner, notebook_name)
    if chosen is None:
        notebooks = [entry.name for entry in entries if entry.name.endswith(".ipynb")]
        if len(notebooks) > 1:
            raise Rejected(f"The submission has several notebooks ({', '.join(map(repr, notebooks[:5]))}) and none is "
                           f"named {notebook_name}: submit the zip made by the export cell, or only {notebook_name}.")
        raise Rejected(f"The submission contains no notebook of this assignment ({notebook_name}): submit the zip "
                       "made by the export cell.")
    if nested:
        notes.append(f"Graded the files inside the folder {nested!r} of your submission.")
    if chosen.name != notebook_name:
        notes.append(f"Graded {chosen.name!r} as the notebook {notebook_name}.")
    size, unreadable = chosen.stat(follow_symlinks=False).st_size, None
    if size > limits.notebook_mb * 2**20:
        unreadable = (f"{chosen.name} is {size / 2**20:.1f} MB, over the {limits.notebook_mb:g} MB the grader reads: "
                      "clear its outputs (Edit > Clear All Outputs), save it, and submit again.")
        (target / notebook_name).write_bytes(b"")
    else:
        _copy(Path(chosen.path), target / notebook_name)
    present = []
    for entry in entries:
        if entry.path == chosen.path:
            continue
        if written_file and entry.name == written_file and _kind(entry) == "file":
            for_people.append(entry.name)
            continue
        if entry.name in student_files and _kind(entry) == "file":
            size = entry.stat(follow_symlinks=False).st_size
            if size > limits.student_file_mb * 2**20:
                notes.append(f"{entry.name} was not graded: it is {size / 2**20:.0f} MB, over the "
                             f"{limits.student_file_mb:g} MB the grader accepts.")
                continue
            _copy(Path(entry.path), target / entry.name)
            present.append(entry.name)
        else:
            left_out.append(entry.name + ("/" if _kind(entry) == "folder" else ""))
    if left_out or skipped:
        names = ", ".join(repr(name)[1:-1] for name in sorted(left_out)[:LISTED])
        more = len(left_out) - LISTED + skipped
        graded = " and ".join([notebook_name, *student_files])
        notes.append(f"Not graded (only {graded} are): {names}{f' and {more} more' if more > 0 else ''}.")
    return Submission(target / notebook_name, present, notes, unreadable, for_people)


def _entries(folder: Path) -> tuple[list[os.DirEntry], int]:
    entries, skipped = [], 0
    try:
        with os.scandir(folder) as scan:
            for entry in scan:
                if len(entries) < MAX_ENTRIES:
                    entries.append(entry)
                else:
                    skipped += 1
    except OSError:
        pass
    return entries, skipped


def _kind(entry: os.DirEntry) -> str:
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return "other"
    return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "other"


def _notebook_in(entries: list[os.DirEntry], notebook_name: str) -> os.DirEntry | None:
    """The assignment's notebook; else the only notebook there is."""
    notebooks = [entry for entry in entries if entry.name.endswith(".ipynb") and _kind(entry) == "file"
                 and not entry.name.startswith(".")]
    exact = [entry for entry in notebooks if entry.name == notebook_name]
    return exact[0] if exact else notebooks[0] if len(notebooks) == 1 else None


def _copy(source: Path, target: Path) -> None:
    """A regular file's bytes, never through a link."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as reading, open(target, "wb") as writing:
        shutil.copyfileobj(reading, writing, 1 << 20)


# ---------------------------------------------------------------------------------------------------------------
# the notebook's cells
# ---------------------------------------------------------------------------------------------------------------
def read_cells(path: Path, assignment: str, limits: Limits, user: KernelUser | None) -> list[Cell]:
    """The graded code cells of the notebook at `path` (its outputs are dropped), parsed in a child process as the
    notebook's user with at most 1 GB of memory. Rejected with a message when it is not a notebook of this assignment
    or over the limits."""
    import tempfile

    with open(path, "rb") as notebook, tempfile.TemporaryFile() as answer_file:
        # both opened here, by the grader: the child reads and writes through them and opens nothing itself

        def parse() -> int:
            resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
            try:
                answer = {"cells": [dataclasses.asdict(cell) for cell in _parse(notebook.read(), assignment, limits)]}
            except Rejected as rejected:
                answer = {"rejected": str(rejected)}
            except MemoryError:
                answer = {"rejected": "The notebook is too large to read: clear its outputs, save it, and submit again."}
            answer_file.write(json.dumps(answer).encode())
            answer_file.flush()
            return 0

        if user is None:  # no user of its own: a child process all the same
            pid = os.fork()
            if pid == 0:
                try:
                    os._exit(parse())
                finally:
                    os._exit(1)
            os.waitpid(pid, 0)
        else:
            _as_user(user, parse, timeout_s=60)
        answer_file.seek(0)
        data = answer_file.read(limits.code_kb * 1024 * 8 + 2**20)
    try:
        answer = json.loads(data)
    except ValueError:
        raise Rejected("The notebook could not be read (is it a notebook saved by Jupyter?).") from None
    if "rejected" in answer:
        raise Rejected(answer["rejected"])
    return [Cell(**cell) for cell in answer["cells"]]


def _parse(raw: bytes, assignment: str, limits: Limits) -> list[Cell]:
    try:
        notebook = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Rejected("The notebook is not valid JSON (is it a notebook saved by Jupyter? Open it, save it, and "
                       "submit again).") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise Rejected("The file is not a Jupyter notebook (it has no list of cells).")
    if notebook.get("nbformat") != 4:
        raise Rejected(f"The notebook is in format version {notebook.get('nbformat')!r}; the grader reads version 4 "
                       "(save it with a current Jupyter).")
    metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
    otter = metadata.get("otter") if isinstance(metadata.get("otter"), dict) else {}
    found = otter.get("assignment_name")
    if isinstance(found, str) and found and found != assignment:
        raise Rejected(f"This notebook is for assignment '{found[:80]}', not '{assignment}': submit the {assignment} "
                       "notebook.")
    if len(notebook["cells"]) > limits.notebook_cells:
        raise Rejected(f"The notebook has {len(notebook['cells']):,} cells, more than the {limits.notebook_cells:,} the "
                       "grader reads: remove the cells you added for experiments and submit again.")
    cells, total = [], 0
    for number, cell in enumerate(notebook["cells"], 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        cell_metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tags = cell_metadata.get("tags") if isinstance(cell_metadata.get("tags"), list) else []
        cell_otter = cell_metadata.get("otter") if isinstance(cell_metadata.get("otter"), dict) else {}
        if IGNORE_TAG in tags or cell_otter.get("ignore") is True:
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise Rejected(f"Cell {number} of the notebook is malformed (its source is not text).")
        size = len(source.encode())
        if size > limits.cell_kb * 1024:
            raise Rejected(f"Cell {number} has {size // 1024:,} KB of code, more than the {limits.cell_kb} KB the grader "
                           "runs in one cell: load large data from a file instead of pasting it.")
        total += size
        if total > limits.code_kb * 1024:
            raise Rejected(f"The notebook has more than {limits.code_kb:,} KB of code: remove what you pasted for "
                           "experiments and submit again.")
        first = next((line.strip() for line in source.splitlines() if line.strip()), "")
        cells.append(Cell(number, first[:40], source))
    return cells
