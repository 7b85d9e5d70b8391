"""`make grade-all` as a TA uses it: Gradescope's "Export Submissions" archive of assignment 1 (the reference as
uploaded files and as the export zip, the stub, two typical mistakes, a broken zip, two students on one submission,
a late one, written answers answered and left empty) graded two at a time; every file it writes is checked against
the inputs, an interrupted run resumes without regrading what is done, and the cohort report is rendered in headless
Chromium (Debian's `chromium`) to a screenshot: no console message, no empty figure."""
import copy
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.assignments import ASSIGNMENTS, ROOT
from test_a1_tfidf import MISTAKES
from autograder.written_answers import NO_ANSWER, NO_NOTEBOOK

A1 = ASSIGNMENTS["a1_tfidf"]
FULL = 18
WRITTEN = "q8_why_idf"
PROMPT = "**Question 8 (written).** Why does multiplying by the idf help the classifier?"
PLACEHOLDER = "_Type your answer here, replacing this text._"

# the people of the export: submission folder -> metadata, what is uploaded, and what it should score
STUDENTS = {
    "submission_1001": [("Ada Lovelace", "1001", "ada@example.edu")],
    "submission_1002": [("Alan Turing", "1002", "alan@example.edu"), ("Grace Hopper", "1003", "grace@example.edu")],
    "submission_1004": [("Barbara Liskov", "1004", "barbara@example.edu")],
    "submission_1005": [("Edsger Dijkstra", "1005", "edsger@example.edu")],
    "submission_1006": [("Donald Knuth", "1006", "donald@example.edu")],
    "submission_1007": [("Frances Allen", "1007", "frances@example.edu")],
}
LATE = {"submission_1005"}
ANSWERS = {"submission_1001": "Rare words carry more *evidence*; idf weights them up.",
           "submission_1002": "Common words like 'the' say nothing about sentiment, so idf shrinks them.",
           "submission_1005": "It rescales features so that frequent words do not dominate."}

WRONG_VOCABULARY = '''
def build_vocabulary(token_lists, size):
    c = Counter(w for t in token_lists for w in t)
    ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 1]
    return {w: i for i, (w, _) in enumerate(ranked)}
'''
WRONG_MULTI_HOT = MISTAKES["q2_multi_hot"]["counts instead of 0/1"]  # a mistake the a1 tests list


def _with_written_answer(notebook: dict, answer: str | None) -> dict:
    """The notebook with a written question (prompt cell, then the tagged answer cell) before its last cell."""
    notebook = copy.deepcopy(notebook)
    prompt = {"cell_type": "markdown", "metadata": {}, "source": PROMPT}
    cell = {"cell_type": "markdown", "source": answer or PLACEHOLDER,
            "metadata": {"tags": ["written_answer"], "written_answer": {"name": WRITTEN, "points": 2}}}
    notebook["cells"][-1:-1] = [prompt, cell]
    return notebook


def _with_cell_after(notebook: dict, defines: str, source: str) -> dict:
    """The notebook with `source` run right after the cell that defines `defines` (a mistake redefining it)."""
    notebook = copy.deepcopy(notebook)
    index = next(i for i, c in enumerate(notebook["cells"])
                 if c["cell_type"] == "code" and f"def {defines}(" in "".join(c["source"]))
    notebook["cells"].insert(index + 1, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                                         "source": source})
    return notebook


def build_export(reference_zip: Path, target: Path) -> Path:
    """A Gradescope "Export Submissions" archive: assignment_4242_export/ with one folder per submission and
    submission_metadata.yml."""
    with zipfile.ZipFile(reference_zip) as zf:
        reference = json.loads(zf.read(f"{A1.name}.ipynb"))
        weights = zf.read("a1_weights.safetensors")
    stub = json.loads(A1.release.read_text())
    notebook = f"{A1.name}.ipynb"
    uploads = {  # what each student uploaded (Gradescope keeps the files; an uploaded zip stays a zip here)
        "submission_1001": {notebook: _with_written_answer(reference, ANSWERS["submission_1001"]),
                            "a1_weights.safetensors": weights},
        "submission_1002": {"a1_tfidf_export.zip": {notebook: _with_written_answer(reference,
                                                                                   ANSWERS["submission_1002"]),
                                                    "a1_weights.safetensors": weights}},
        "submission_1004": {notebook: _with_written_answer(stub, None)},
        "submission_1005": {notebook: _with_written_answer(_with_cell_after(reference, "build_vocabulary",
                                                                            WRONG_VOCABULARY),
                                                           ANSWERS["submission_1005"]),
                            "a1_weights.safetensors": weights},
        "submission_1006": {notebook: _with_written_answer(_with_cell_after(reference, "multi_hot", WRONG_MULTI_HOT),
                                                           ""),
                            "a1_weights.safetensors": weights},
        "submission_1007": {"a1_tfidf_export.zip": b"PK\x03\x04 this is not a zip"},
    }

    def data(value) -> bytes:
        if isinstance(value, dict) and "cells" not in value:  # a zip of files
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as inner:
                for name, content in value.items():
                    inner.writestr(name, data(content))
            return buffer.getvalue()
        return json.dumps(value).encode() if isinstance(value, dict) else value

    metadata = []  # written as Gradescope writes it (Ruby symbols as keys, an unquoted timestamp)
    for i, (key, people) in enumerate(STUDENTS.items()):
        metadata += [f"{key}:", "  :submitters:"]
        for name, sid, email in people:
            metadata += [f"  - :name: {name}", f"    :sid: '{sid}'", f"    :email: {email}"]
        metadata += [f"  :created_at: 2026-12-0{1 + i % 5} 12:0{i}:00.123456789 -08:00", "  :score: 0.0",
                     "  :status: processed"] + (["  :late: true"] if key in LATE else [])
    archive = target / "assignment_4242_export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("assignment_4242_export/submission_metadata.yml", "\n".join(metadata) + "\n")
        for key, files in uploads.items():
            for name, content in files.items():
                zf.writestr(f"assignment_4242_export/{key}/{name}", data(content))
    return archive


def run_grade_all(archive: Path, out: Path) -> subprocess.CompletedProcess:
    """`make grade-all`, as a TA types it (the module itself where make would first rebuild the shared .venv)."""
    env = dict(os.environ)
    if subprocess.run(["make", "-q", ".venv/.ready"], cwd=ROOT).returncode == 0:
        command = ["make", "--no-print-directory", "grade-all", f"SUBMISSIONS={archive}", "ASSIGNMENT=a1_tfidf",
                   "JOBS=2", f"OUT={out}", "CONTAINER=memory"]  # 768 MB; full speed (no time limit is checked)
    else:
        command = [sys.executable, "-m", "autograder.cohort", str(archive), "--assignment", "a1_tfidf", "--jobs", "2",
                   "--out", str(out), "--container", "memory"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def graded(reference_zip, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cohort")
    archive = build_export(Path(reference_zip), tmp)
    done = run_grade_all(archive, tmp / "graded")
    return archive, tmp / "graded", done


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _results(out: Path, key: str) -> dict:
    return json.loads((out / "submissions" / key / "results.json").read_text())


def _per_question(results: dict) -> dict[str, float]:
    """Points per question: a question is one entry, or its public and hidden entries (named in extra_data);
    the 0-point submission check is none."""
    scores: dict[str, float] = {}
    for test in results["tests"]:
        question = (test.get("extra_data") or {}).get("question")
        if "score" in test and (question or test.get("max_score")):
            scores[question or test["name"]] = scores.get(question or test["name"], 0.0) + float(test["score"])
    return scores


def test_scores_csv_has_every_student_with_identity_and_per_question_scores(graded):
    _, out, done = graded
    assert "6 to grade, 2 at a time" in done.stdout, done.stdout
    rows = _rows(out / "scores.csv")
    expected = {sid: (key, name, email) for key, people in STUDENTS.items() for name, sid, email in people}
    assert sorted(r["sid"] for r in rows) == sorted(expected)
    questions = list(_per_question(_results(out, "submission_1001")))
    assert len(questions) == 7
    for row in rows:
        key, name, email = expected[row["sid"]]
        assert (row["submission"], row["name"], row["email"]) == (key, name, email)
        assert row["late"] == ("yes" if key in LATE else "")
        assert row["submitted_at"].startswith("2026-12-0") and row["submitted_at"].endswith(":00.123456-08:00")
        scores = _per_question(_results(out, key))
        assert {q: float(row[q]) for q in questions} == scores
        assert float(row["total"]) == sum(scores.values()) and float(row["max"]) == FULL
    total = {r["sid"]: float(r["total"]) for r in rows}
    assert total["1001"] == total["1002"] == total["1003"] == FULL  # uploaded files, and the export zip (two students)
    assert total["1004"] == 0 and total["1007"] == 0  # the stub; the broken zip
    by_sid = {r["sid"]: r for r in rows}
    assert float(by_sid["1005"]["q1_vocabulary"]) < 3 and total["1005"] < FULL  # index 0 given to a word
    assert float(by_sid["1006"]["q2_multi_hot"]) < 2 and total["1006"] < FULL  # counts instead of 0/1
    assert "not a readable zip" in _results(out, "submission_1007")["output"]


def test_gradebooks_import_layouts(graded):
    _, out, _ = graded
    scores = {r["sid"]: r for r in _rows(out / "scores.csv")}
    with open(out / "gradebook-canvas.csv", newline="") as f:
        canvas = list(csv.reader(f))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "a1_tfidf"]
    assert canvas[1][0].strip() == "Points Possible" and float(canvas[1][5]) == FULL
    assert {row[2]: (row[0], float(row[5])) for row in canvas[2:]} == \
        {sid: (r["name"], float(r["total"])) for sid, r in scores.items()}
    generic = _rows(out / "gradebook.csv")
    assert {r["sid"]: (r["name"], r["email"], float(r["a1_tfidf"]), r["late"]) for r in generic} == \
        {sid: (r["name"], r["email"], float(r["total"]), r["late"]) for sid, r in scores.items()}


def test_one_feedback_file_per_student_with_hidden_results(graded):
    _, out, _ = graded
    for key, people in STUDENTS.items():
        results = _results(out, key)
        for name, sid, _ in people:
            stem = f"{name.replace(' ', '_')}_{sid}"
            for suffix in (".md", ".html"):
                text = (out / "feedback" / f"{stem}{suffix}").read_text()
                assert name in text and key in text
                score = sum(_per_question(results).values())
                assert f"{score:g} / {FULL}" in text
                for test in results["tests"]:
                    assert test["name"] in text  # every entry, public and hidden
    stub = (out / "feedback" / "Barbara_Liskov_1004.md").read_text()
    assert "Hidden test failed" in stub  # hidden results too, as results.json has them
    assert "(late)" in (out / "feedback" / "Edsger_Dijkstra_1005.md").read_text()
    assert len(list((out / "feedback").glob("*.md"))) == 7


def test_written_answers_gathered_by_question(graded):
    _, out, _ = graded
    text = (out / "written" / f"{WRITTEN}.md").read_text()
    assert "(2 points)" in text and PROMPT in text
    sections = {}
    for block in text.split("\n---\n")[1:]:
        heading = block.strip().splitlines()[0]
        sections[heading] = block
    assert len(sections) == 6
    for key, people in STUDENTS.items():
        heading = "## " + ", ".join(f"{n} ({s})" for n, s, _ in people)
        block = sections[heading]
        if key in ANSWERS:
            assert ANSWERS[key] in block
        elif key == "submission_1007":
            assert NO_NOTEBOOK in block
        else:
            assert NO_ANSWER in block and PLACEHOLDER not in block
    html_text = (out / "written" / f"{WRITTEN}.html").read_text()
    assert "<em>evidence</em>" in html_text and "Grace Hopper (1003)" in html_text


def test_a_rerun_grades_only_what_is_not_done_or_changed(graded):
    archive, out, _ = graded
    before = {p.parent.name: p.stat().st_mtime_ns for p in (out / "submissions").glob("*/results.json")}
    (out / "submissions" / "submission_1004" / "submission.json").unlink()  # as if stopped while grading it
    done = run_grade_all(archive, out)
    assert "5 already graded, 1 to grade" in done.stdout, done.stdout
    after = {p.parent.name: p.stat().st_mtime_ns for p in (out / "submissions").glob("*/results.json")}
    assert [k for k in before if before[k] != after[k]] == ["submission_1004"]
    assert _rows(out / "scores.csv") and (out / "report.html").exists()
    # a new export in which one submission changed: only that one is graded again
    changed = archive.with_name("changed.zip")
    with zipfile.ZipFile(archive) as old, zipfile.ZipFile(changed, "w") as new:
        for item in old.infolist():
            content = old.read(item)
            new.writestr(item, content + b" resubmitted" if item.filename.endswith("submission_1007/a1_tfidf_export.zip")
                         else content)
    changed.replace(archive)
    done = run_grade_all(archive, out)
    assert "5 already graded, 1 to grade" in done.stdout, done.stdout
    again = {p.parent.name: p.stat().st_mtime_ns for p in (out / "submissions").glob("*/results.json")}
    assert [k for k in after if after[k] != again[k]] == ["submission_1007"]


def test_report_lists_failures_with_examples(graded):
    _, out, _ = graded
    page = (out / "report.html").read_text()
    assert page.count("<img ") >= 3 and "src='data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "q1_vocabulary" in page and "submission_1005" in page  # the mistake, its example
    assert page.count("not a readable zip") == 1 and "submission_1007" in page  # once, not once per test case
    assert "0.86" in page  # the weights test's threshold


def test_report_draws_the_metric_against_its_threshold(tmp_path):
    """results.json with Gradescope leaderboard entries: the metric's histogram is drawn against the threshold the
    failing test states (no grading, no autograder zip needed)."""
    from autograder.report import build_report

    for i, accuracy in enumerate([0.84, 0.87, 0.88, 0.885, 0.9]):
        folder = tmp_path / "submissions" / f"submission_{i}"
        folder.mkdir(parents=True)
        passed = accuracy >= 0.86
        results = {"tests": [{"name": "q6_trained_model", "score": 4.0 if passed else 1.0, "max_score": 4.0,
                              "output": "q6_trained_model results: All test cases passed!" if passed else
                              "q6_trained_model results:\n    test_test_accuracy_of_exported_weights result:\n"
                              f"        ❌ Test case failed\n        AssertionError: test accuracy {accuracy:.4f} is "
                              "below the 0.86 threshold"}],
                   "leaderboard": [{"name": "Accuracy", "value": accuracy, "order": "desc"}]}
        (folder / "results.json").write_text(json.dumps(results))
        (folder / "submission.json").write_text(json.dumps({"key": folder.name, "assignment": "demo",
                                                            "submitters": [{"name": f"S{i}", "sid": str(i)}]}))
    page = build_report(tmp_path)
    assert page.count("<img ") == 4  # scores, questions, test cases, metric
    assert "5 of 5 submissions report Accuracy" in page and "1 on the failing side of 0.86" in page


CHECK_FIGURES = """<script>window.addEventListener('load', () => {
  const found = [...document.images].map(img => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
    const px = img.naturalWidth ? ctx.getImageData(0, 0, canvas.width, canvas.height).data : [];
    let colored = 0;  // the data is drawn in colour; empty axes are black, grey and white only
    for (let i = 0; i < px.length; i += 4)
      if (Math.abs(px[i] - px[i + 1]) + Math.abs(px[i + 1] - px[i + 2]) > 60) colored++;
    return {alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, shown: img.getBoundingClientRect().width,
            colored: colored / Math.max(1, px.length / 4)};
  });
  const out = document.createElement('pre'); out.id = 'figure-check'; out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});</script>"""


def _chromium(*args) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium_without_errors_or_empty_figures(graded, tmp_path):
    _, out, _ = graded
    report = out / "report.html"
    shot = out / "report.png"
    rendered = _chromium("--window-size=1280,3600", f"--screenshot={shot}", "--virtual-time-budget=5000",
                         report.as_uri())
    console = [line for line in rendered.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console  # the page has no script: any console message is an error (a failed load, ...)
    assert shot.exists() and shot.stat().st_size > 20_000
    probe = tmp_path / "report-probe.html"  # the same page, with a script that measures every figure as drawn
    probe.write_text(report.read_text().replace("</body>", CHECK_FIGURES + "</body>"))
    dumped = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert not [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line], dumped.stderr[-2000:]
    figures = json.loads(dumped.stdout.split('<pre id="figure-check">')[1].split("</pre>")[0])
    assert len(figures) >= 3, figures
    for figure in figures:
        assert figure["width"] > 100 and figure["height"] > 100 and figure["shown"] > 100, figure
        assert figure["colored"] > 0.005, figure  # more than the axes: data is drawn
    from PIL import Image

    with Image.open(shot) as image:  # the screenshot is of the page, not a blank window
        colors = image.convert("RGB").resize((64, 180)).getcolors(64 * 180)
        assert colors is None or len(colors) > 20
