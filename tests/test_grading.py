"""Grading assignment 1 end to end through the same path as Gradescope (the zip's run_autograder): the reference
scores full marks, the stub zero, a grading ended from outside still leaves a results.json, and grading many
submissions writes one row each."""
import csv
import json
import os
import shutil
import time
import zipfile

import nbformat
import pytest

from autograder.assignments import ASSIGNMENTS
from autograder.grade import grade, grade_all, grade_with_run, per_question, questions_of, run_zip
from autograder.sandbox.processes import is_zombie

A1 = ASSIGNMENTS["a1_tfidf"]
FULL = 18


def _notebook(reference_zip, tmp_path, edit=None):
    with zipfile.ZipFile(reference_zip) as zf:
        nb = nbformat.reads(zf.read(f"{A1.name}.ipynb").decode(), as_version=4)
    if edit:
        edit(nb)
    path = tmp_path / f"{A1.name}.ipynb"
    nbformat.write(nb, path)
    return path


def _insert_after_imports(source):
    def edit(nb):
        index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "VOCAB_SIZE = 10_000" in c.source)
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return edit


def test_reference_scores_full_marks(reference_zip, tmp_path):
    results = grade(reference_zip, A1, tmp_path, quiet=True)
    scores = {t["name"]: t["score"] for t in results["tests"] if "score" in t}
    assert sum(scores.values()) == FULL, scores
    assert (tmp_path / "summary.txt").read_text().strip().endswith(f"total: {FULL} / {FULL}")


def test_stub_scores_zero_and_hidden_test_code_stays_hidden(reference_zip, tmp_path):
    results = grade(A1.release, A1, tmp_path, quiet=True)
    assert sum(t["score"] for t in results["tests"] if "score" in t) == 0
    everything = json.dumps(results)
    assert "Hidden test failed" in everything
    assert "assert torch.is_tensor(idf)" not in everything, "a hidden test's source line reached results.json"


def test_missing_weights_loses_only_the_model_question(reference_zip, tmp_path):
    notebook = _notebook(reference_zip, tmp_path)  # a notebook with no weights file beside it
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    by_question = questions_of(results)
    assert by_question["q6_trained_model"]["score"] == 0
    assert "a1_weights.safetensors is missing" in by_question["q6_trained_model"]["output"]
    assert sum(t["score"] for t in by_question.values()) == FULL - 4


def test_grading_ended_from_outside_still_leaves_a_complete_results_file(reference_zip, tmp_path, monkeypatch):
    """Gradescope ends everything at its limit, whatever the grader is doing (here: a cell allowed to run longer than
    the outer limit). The supervisor wrote a complete results.json before anything of the submission ran, so the
    student still gets one, with every question at 0 and the reason; and nothing of the grading is left running."""
    monkeypatch.setenv("COURSE_CELL_TIMEOUT_S", "600")
    notebook = _notebook(reference_zip, tmp_path, _insert_after_imports("while True:\n    pass"))
    results, run = grade_with_run(notebook, A1, tmp_path / "out", timeout_s=30, quiet=True)
    assert run.timed_out and run.results is not None, "results.json must exist before the grading is ended"
    assert not run.left, f"processes outlived the grading: {run.left}"
    assert results["tests"] and all(t["score"] == 0 for t in results["tests"])
    assert "Gradescope's time limit" in results["tests"][0]["output"]
    assert "stopped after 30 s" in results["output"]


@pytest.mark.parametrize("finish", ["exit", "timeout"])
def test_what_a_grading_leaves_running_is_listed_and_killed(tmp_path, finish):
    """A run_autograder that detaches a process (a new session) and exits: the process is adopted by the grader (a
    child subreaper), listed in `left`, and killed. Ended at the outer limit instead, everything below it is killed
    at once, as Gradescope does, so nothing is left."""
    pid_file = tmp_path / "pid"
    entry = tmp_path / "run_autograder"
    entry.write_text(f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 120' &\n"
                     f"while [ ! -s {pid_file} ]; do sleep 0.05; done\n"
                     + ("sleep 60\n" if finish == "timeout" else "exit 0\n"))
    run = run_zip(entry, tmp_path / "log", timeout_s=5)
    detached = int(pid_file.read_text())
    assert run.timed_out == (finish == "timeout")
    assert run.left == ([] if finish == "timeout" else [detached]), run.left
    deadline = time.monotonic() + 2  # killed: gone, or a zombie of this process until it is collected
    while not is_zombie(detached) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert is_zombie(detached), "still running"
    try:
        os.waitpid(detached, 0)
    except ChildProcessError:  # collected already
        pass


def test_raising_cell_still_gives_results(reference_zip, tmp_path):
    notebook = _notebook(reference_zip, tmp_path, _insert_after_imports("raise RuntimeError('student bug')"))
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    assert len(questions_of(results)) == 7
    assert "cell 5 (raise RuntimeError('student bug')): RuntimeError: student bug" in results["output"]


def test_grade_all_writes_one_row_per_submission(reference_zip, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(reference_zip, folder / "a1_tfidf_alice.zip")
    (folder / "a1_tfidf_bob.ipynb").write_text("{broken")
    csv_path = grade_all(folder, tmp_path / "graded", A1)
    rows = {r["submission"]: r for r in csv.DictReader(open(csv_path))}
    assert float(rows["a1_tfidf_alice.zip"]["total"]) == FULL
    assert float(rows["a1_tfidf_bob.ipynb"]["total"]) == 0


def gradescope_python():
    """The Python built by `make gradescope-env` from the zip's requirements only."""
    from autograder.assignments import ROOT

    python = ROOT / "build" / "gradescope-env" / "bin" / "python"
    assert python.exists(), "run `make gradescope-env` (make test builds it)"
    return python


def test_reference_grades_in_the_gradescope_environment(reference_zip, tmp_path):
    """Graded as on Gradescope: the zip's run_autograder, in a Python that has only the zip's requirements
    (`make gradescope-env`): the course library from the zip, no datasets/pyarrow, nothing of the development
    environment."""
    from autograder.assignments import ROOT

    python = gradescope_python()
    # a last cell reports, through the grader's list of cells that raised, where the kernel ran
    report = ("import importlib.util, sys, course\n"
              "raise RuntimeError(f'kernel={sys.prefix} course={course.__file__} "
              "pyarrow={importlib.util.find_spec(\"pyarrow\") is not None}')")
    notebook = _notebook(reference_zip, tmp_path, lambda nb: nb.cells.append(nbformat.v4.new_code_cell(report)))
    with zipfile.ZipFile(reference_zip) as zf:
        (tmp_path / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    results = grade(notebook, A1, tmp_path / "out", quiet=True, python=str(python))
    assert sum(t.get("score", 0) for t in results["tests"]) == FULL, results.get("output")
    assert f"kernel={python.parent.parent}" in results["output"], results["output"]
    assert "pyarrow=False" in results["output"] and f"course={ROOT / 'shared'}" not in results["output"], results["output"]


def test_a_submission_zip_that_cannot_be_unpacked_still_gets_results(tmp_path):
    """A file and a folder of one name in the export zip: unpacking fails before the zip's entry point runs, and the
    student still gets a results.json that says so."""
    submission = tmp_path / "a1_tfidf_export.zip"
    with zipfile.ZipFile(submission, "w") as zf:
        zf.writestr("a1_weights.safetensors", b"x")
        zf.writestr("a1_weights.safetensors/inner", b"y")
    results = grade(submission, A1, tmp_path / "out", quiet=True)
    assert (tmp_path / "out" / "results.json").exists()
    assert results["tests"] and all(t["score"] == 0 for t in results["tests"])
    assert "could not be laid out" in results["output"], results["output"]


# ---- what a student sees at once (Gradescope shows nothing else until grades are published) ----
def _visible(results) -> str:
    return "\n".join(t["output"] for t in results["tests"] if t["visibility"] == "visible")


def _submission_zip(folder, notebook, files):
    path = folder / "submission.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(notebook, notebook.name)
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_what_a_student_sees_at_once(reference_zip, tmp_path):
    """Through the zip's entry point: for the reference, a stub, broken weights, a raising cell and empty written
    answers, the visible entries (the submission check, every public check) say what happened; hidden tests keep
    their points behind the course's visibility and say nothing visible."""
    manifest = json.loads(zipfile.ZipFile(A1.zip_path).read("grading.json"))
    public = {(q["name"], c["name"]) for q in manifest["questions"] for c in q["cases"] if not c["hidden"]}
    with zipfile.ZipFile(reference_zip) as zf:
        weights = zf.read("a1_weights.safetensors")
        answers = zf.read(f"{A1.name}_written_answers.md")

    for folder in ("broken", "raising", "empty"):
        (tmp_path / folder).mkdir()
    reference = grade(reference_zip, A1, tmp_path / "reference", quiet=True)
    check = reference["tests"][0]
    assert check["name"] == "Submission check" and check["visibility"] == "visible" and check["max_score"] == 0
    assert check["status"] == "passed", check["output"]
    assert f"`{A1.name}.ipynb`, `a1_weights.safetensors`" in check["output"]
    assert f"{len(public)} of {len(public)} passed" in check["output"]
    assert f"`{A1.name}_written_answers.md`" in check["output"]  # acknowledged for the staff, not "not graded"
    hidden_entries = [t for t in reference["tests"] if t["extra_data"].get("hidden")]
    assert hidden_entries and all(t["visibility"] == manifest["hidden_visibility"] for t in hidden_entries)
    assert {t["name"] for t in reference["tests"] if t["visibility"] == "visible"} == {"Submission check"} | {
        f"{q}: public checks" for q, _ in public}
    assert reference["leaderboard"][0]["name"] == "Test accuracy" and reference["leaderboard"][0]["value"] >= 0.86

    stub = grade(A1.release, A1, tmp_path / "stub", quiet=True)
    seen = _visible(stub)
    assert "0 of" in seen and "fill in the stub" in seen and "a1_weights.safetensors` is missing" in seen
    assert "Hidden test failed" not in seen  # hidden words only behind the course's visibility

    broken = _submission_zip(tmp_path / "broken", _notebook(reference_zip, tmp_path / "broken"),
                             {"a1_weights.safetensors": weights[:200], f"{A1.name}_written_answers.md": answers})
    seen = _visible(grade(broken, A1, tmp_path / "broken" / "out", quiet=True))
    assert "test_weights_file_loads: ❌" in seen and "not a safetensors file" in seen, seen

    raising = _notebook(reference_zip, tmp_path / "raising", _insert_after_imports("raise RuntimeError('student bug')"))
    seen = _visible(grade(raising, A1, tmp_path / "raising" / "out", quiet=True))
    assert "cell 5 (raise RuntimeError('student bug')): RuntimeError: student bug" in seen, seen

    empty = _submission_zip(tmp_path / "empty", _notebook(reference_zip, tmp_path / "empty"),
                            {"a1_weights.safetensors": weights})  # the export cell's answers file is missing
    results = grade(empty, A1, tmp_path / "empty" / "out", quiet=True)
    assert sum(score for score, _ in per_question(results).values()) == FULL
    assert f"`{A1.name}_written_answers.md` is not in your submission" in _visible(results)
