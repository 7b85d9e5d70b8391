"""Grading assignment 1 end to end through the same path as Gradescope (otter run on the zip):
the reference scores full marks, the stub zero, and broken submissions still get a results.json
with a message, within a bounded time."""
import csv
import json
import shutil
import zipfile

import nbformat
import pytest

from autograder.assignments import ASSIGNMENTS
from autograder.grade import grade, grade_all

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
    by_question = {t["name"]: t for t in results["tests"] if "score" in t}
    assert by_question["q6_trained_model"]["score"] == 0
    assert "a1_weights.safetensors is missing" in by_question["q6_trained_model"]["output"]
    assert sum(t["score"] for t in by_question.values()) == FULL - 4


def test_endless_cell_is_stopped_with_a_message(reference_zip, tmp_path):
    notebook = _notebook(reference_zip, tmp_path, _insert_after_imports("while True:\n    pass"))
    results = grade(notebook, A1, tmp_path / "out", timeout_s=60, quiet=True)
    assert results["tests"] and all(t["score"] == 0 for t in results["tests"])
    assert "stopped after 60 s" in results["tests"][0]["output"]
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == results


def test_raising_cell_still_gives_results(reference_zip, tmp_path):
    notebook = _notebook(reference_zip, tmp_path, _insert_after_imports("raise RuntimeError('student bug')"))
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    assert len([t for t in results["tests"] if "score" in t]) == 7


@pytest.mark.parametrize("content", ["this is not a notebook", ""])
def test_malformed_notebook_gets_a_message(reference_zip, tmp_path, content):
    path = tmp_path / f"{A1.name}.ipynb"
    path.write_text(content)
    results = grade(path, A1, tmp_path / "out", quiet=True)
    assert results["tests"] and all(t["score"] == 0 for t in results["tests"])
    assert "could not run this submission" in results["tests"][0]["output"]


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
    """Graded as on Gradescope: the zip's run_otter.py, in a Python that has only the zip's requirements
    (`make gradescope-env`): no course library, no datasets/pyarrow, nothing from the development environment."""
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
