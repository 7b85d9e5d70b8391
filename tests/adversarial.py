"""What the adversarial tests share (tests/test_adversarial_limits.py, tests/test_adversarial_boundary.py): grading a
submission of assignment 1 through the zip's own entry point, the invariants every grading must keep
(`_check_invariants`), and the pieces of attack code several tests use. Each test module imports the fixtures it
needs (`short_cell_limit` is autouse there: a cell's limit of 15 s)."""
import json
import os
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.assignments import ASSIGNMENTS, Assignment
from autograder.grade import grade_with_run, per_question
from test_grading import _insert_after_imports, _notebook

A1 = ASSIGNMENTS["a1_tfidf"]
WEIGHTS_POINTS = 4  # q6_trained_model: graded from the exported file even when the notebook's process is gone


@pytest.fixture(autouse=True)
def short_cell_limit(monkeypatch):
    monkeypatch.setenv("COURSE_CELL_TIMEOUT_S", "15")


@pytest.fixture
def kernel_as_root(monkeypatch):
    """The notebook keeps the grader's user (root here), as when grading does not run as root: its writes to the
    autograder's files succeed, so what keeps the verdicts intact is that the tests were read before its first cell
    and run in another process."""
    monkeypatch.setenv("COURSE_KERNEL_USER", "")


def _scores(results):
    return {question: score for question, (score, _) in per_question(results).items()}


def _everything(results) -> str:
    return json.dumps(results, ensure_ascii=False)


TEMPORARY_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")


def _check_invariants(run, out: Path) -> None:
    """What holds for every submission, whatever it does."""
    assert run is not None and run.results is not None, "the zip's run_autograder wrote no results.json"
    assert not run.left, f"processes of this grading outlived it: {run.left}"
    report = json.loads((out / "supervisor.json").read_text())
    assert not os.path.exists(report["private"]), "the supervisor's private folder outlived grading"
    uid = report.get("kernel_uid")
    if uid is not None:
        from autograder.sandbox.users import ipc_objects, writable_places

        left = [entry.path for folder in {*TEMPORARY_FOLDERS, *writable_places()} if os.path.isdir(folder)
                for entry in os.scandir(folder) if entry.stat(follow_symlinks=False).st_uid == uid]
        assert not left, f"files of the notebook's user outlived grading: {left}"
        assert not ipc_objects(uid), f"System V IPC objects of the notebook's user outlived grading: {ipc_objects(uid)}"
    group = report.get("notebook_cgroup")
    assert group is None or not os.path.exists(group), f"the notebook's cgroup outlived grading: {group}"


def _grade(submission, tmp_path, **kwargs):
    results, run = grade_with_run(submission, A1, tmp_path / "out", quiet=True, **kwargs)
    _check_invariants(run, tmp_path / "out")
    return results


def _copy_reference_weights(reference_zip, folder: Path) -> None:
    with zipfile.ZipFile(reference_zip) as zf:
        (folder / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))


def _grade_edited(reference_zip, tmp_path, edit, with_weights=True, **kwargs):
    """Grade the reference notebook after `edit(notebook)`, with the reference weights unless told otherwise."""
    notebook = _notebook(reference_zip, tmp_path, edit)
    if with_weights:
        _copy_reference_weights(reference_zip, tmp_path)
    return _grade(notebook, tmp_path, **kwargs)


def _grade_with(reference_zip, tmp_path, source, **kwargs):
    """... with a cell inserted after the imports (so the rest of the notebook still runs after it)."""
    return _grade_edited(reference_zip, tmp_path, _insert_after_imports(source), **kwargs)


def _grade_appended(reference_zip, tmp_path, *sources, **kwargs):
    """... with cells appended at its end (so they replace what the notebook defined)."""
    return _grade_edited(reference_zip, tmp_path, lambda nb: nb.cells.extend(map(nbformat.v4.new_code_cell, sources)),
                         **kwargs)


def _grade_zip(tmp_path, entries: dict, **kwargs):
    """Grade a submission zip holding `entries` (name -> bytes)."""
    path = tmp_path / "a1_tfidf_export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return _grade(path, tmp_path, **kwargs)


def _with_zip(monkeypatch, tmp_path, change) -> None:
    """Grade with a copy of the a1 autograder zip whose files `change(name, bytes)` rewrites."""
    changed = tmp_path / "changed-autograder.zip"
    with zipfile.ZipFile(A1.zip_path) as original, zipfile.ZipFile(changed, "w") as target:
        for item in original.infolist():
            target.writestr(item, change(item.filename, original.read(item)))
    monkeypatch.setattr(Assignment, "zip_path", property(lambda self: changed))


WRONG_TFIDF = "def tfidf_l2(multi_hot_rows, idf):  # wrong: forgets the idf\n" \
              "    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)\n"

# written against the grader's source: where the autograder's folder is (the supervisor's command line says)
FIND_ROOT = '''
def _autograder_root():
    import glob
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            args = open(path, "rb").read().split(b"\\0")
        except OSError:
            continue
        for i, arg in enumerate(args):
            if arg.endswith(b"supervise.py") and i + 1 < len(args):
                return args[i + 1].decode()
    raise RuntimeError("no process runs supervise.py: the attack cannot find the autograder's folder")
ROOT = _autograder_root()

def _did(what):  # a test that proves the defence also proves that the attack happened (see _with_evidence)
    if "EVIDENCE" in globals():
        with open(EVIDENCE, "a") as evidence:
            evidence.write(what + "\\n")
'''


def _with_evidence(tmp_path, payload):
    """`payload` with EVIDENCE naming the file its writes to the grader's files are recorded in, and that file."""
    evidence = tmp_path / "attack-evidence"
    return f"EVIDENCE = {str(evidence)!r}\n" + payload, evidence


def _attack_happened(evidence) -> None:
    assert evidence.exists() and evidence.read_text().strip(), "the attack wrote nothing: this test proves nothing"


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _command_line(pid) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
