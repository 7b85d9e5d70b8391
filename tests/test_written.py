"""Written answers (course.written): what the export cell writes, from the cells the masters tag, and what the build
keeps for graders only (the rubric)."""
import json
import zipfile

import nbformat
import pytest

from autograder.assignments import ASSIGNMENTS
from autograder.masters import load
from course import written

WITH_WRITTEN = [name for name in ASSIGNMENTS if load(name).written]


def test_a1_to_a4_have_written_questions_with_points_and_a_rubric():
    assert WITH_WRITTEN == ["a1_tfidf", "a2_embeddings", "a3_self_attention", "a4_multihead"]
    for name in WITH_WRITTEN:
        for question in load(name).written:
            assert question["points"] > 0 and question["rubric"] and question["prompt"], (name, question)
            assert f"({question['points']} points" in question["prompt"], "the notebook must show the points"


@pytest.mark.parametrize("name", WITH_WRITTEN)
def test_releases_carry_answer_cells_and_no_rubric(name):
    release = ASSIGNMENTS[name].release
    nb = json.loads(release.read_text())
    found = written.written_questions(nb)
    assert [q["name"] for q in found] == [w["name"] for w in load(name).written]
    assert all(q["answer"] == "" for q in found)  # the placeholder counts as no answer
    text = release.read_text()
    assert not any(w["rubric"][:60] in text for w in load(name).written), "a rubric hint reached the release"


def test_answers_file_has_each_answer_under_its_heading(tmp_path, capsys):
    nb = nbformat.read(ASSIGNMENTS["a3_self_attention"].release, as_version=4)
    cells = [c for c in nb.cells if "written_answer" in c.metadata.get("tags", [])]
    cells[0].source = "The **largest weight** tends to 1 as k grows.\n\n```\ncode stays\n```"
    path = tmp_path / "a3_self_attention.ipynb"
    nbformat.write(nb, path)
    target = written.save_written_answers(path)
    text = target.read_text()
    assert target.name == "a3_self_attention_written_answers.md"
    first, second = (w["name"] for w in load("a3_self_attention").written)
    assert f"## {first} (2 points)" in text and f"## {second} (2 points)" in text
    assert text.index("The **largest weight**") < text.index(f"## {second}") and "*(no answer)*" in text
    assert f"still empty: {second}" in capsys.readouterr().out


def test_export_adds_the_answers_file_to_the_zip(tmp_path, monkeypatch):
    """grader.export outside Colab (otter's own export, wrapped by the setup cell) zips the answers file too."""
    import sys

    import otter
    from otter.check.notebook import Notebook

    monkeypatch.setattr(Notebook, "export", Notebook.export)  # restored after the test
    for module in [m for m in sys.modules if m == "google" or m.startswith("google.")]:  # a Colab stand-in, if any
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.chdir(tmp_path)
    release = ASSIGNMENTS["a1_tfidf"].release
    (tmp_path / release.name).write_text(release.read_text())
    (tmp_path / "a1_weights.safetensors").write_bytes(b"x")
    written.enable_export("a1_tfidf")
    grader = otter.Notebook(release.name, tests_dir=str(tmp_path))
    grader.export(release.name, "out.zip", pdf=False, files=["a1_weights.safetensors"])
    names = zipfile.ZipFile(tmp_path / "out.zip").namelist()
    assert "a1_tfidf_written_answers.md" in names and "a1_weights.safetensors" in names and release.name in names


def test_no_answers_file_without_written_questions(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("no questions")])
    path = tmp_path / "a5_transformer.ipynb"
    nbformat.write(nb, path)
    assert written.add_to_export(path, "a5_transformer", ["w.safetensors"]) == ["w.safetensors"]
    assert not (tmp_path / "a5_transformer_written_answers.md").exists()
