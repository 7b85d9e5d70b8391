"""The student's side of a release: the course's address, the setup cell, Colab, the quick switch, checks out of order.

`make student-path` (autograder/student_path.py) runs every release notebook end to end in a fresh Colab-like runtime;
these tests check its parts without a kernel, in seconds.
"""
import importlib
import inspect
import json
import random
import re
import subprocess
import sys
import types
import zipfile

import nbformat
import pytest

from autograder import config as course_config
from autograder.assignments import ASSIGNMENTS
from autograder.masters import load, run_test
from autograder.student_path import GUARD

NAMES = sorted(ASSIGNMENTS)


def test_every_master_gets_the_one_bootstrap():
    """Each master's setup cell is the marker the build replaces by the one bootstrap, named for its assignment; the
    bootstrap installs the otter that requirements.txt pins; a master without the marker does not build."""
    from autograder.assignments import ROOT

    otter = re.search(r"^otter-grader==\S+", (ROOT / "requirements.txt").read_text(), re.M)[0]
    for name in NAMES:
        _, setup = setup_cell_of_master(name)
        assert course_config.SETUP_MARKER not in setup.source
        bootstrap = _bootstrap(name)
        assert f'colab.setup("{name}", COURSE_REPO, COURSE_BRANCH)' in bootstrap
        assert "print(training.device_report(CPU_TRAINING))" in setup.source.split(bootstrap, 1)[1]
        assert bootstrap.count(otter) == 3 and bootstrap.count("otter-grader==") == 3, name
    with pytest.raises(ValueError, match="expected the line"):
        course_config.write_setup("CPU_TRAINING = \"1 s\"\n", "a1_tfidf", course_config.load())


def setup_cell_of_master(name, config=None):
    from autograder.build import master_notebook

    nb = master_notebook(ASSIGNMENTS[name], config)
    return nb, next(cell for cell in nb.cells if course_config.is_setup_cell(cell))


def test_make_release_course_repo_overrides_the_address():
    config = course_config.load("https://gitlab.example.org/course/transformers.git", "v2")
    _, setup = setup_cell_of_master("a3_self_attention", config)
    assert 'COURSE_REPO = "https://gitlab.example.org/course/transformers.git"' in setup.source
    assert 'COURSE_BRANCH = "v2"' in setup.source
    assert config.colab is None and config.colab_link("a3_self_attention") is None  # Colab opens GitHub only
    github = course_config.load("https://github.com/someone/fork", "spring")
    assert github.colab_link("a1_tfidf") == ("https://colab.research.google.com/github/someone/fork/blob/spring/"
                                            "assignments/a1_tfidf/a1_tfidf.ipynb")
    assert github.pip_url == "git+https://github.com/someone/fork@spring#subdirectory=shared"
    for bad in ('https://x/"; import os', "with space", "<course repository URL>"):
        with pytest.raises(ValueError):
            course_config.load(bad)
    with pytest.raises(ValueError, match="COURSE_BRANCH"):
        course_config.apply('COURSE_REPO = "x"\n', config)


def _bootstrap(name):
    _, setup = setup_cell_of_master(name)
    return setup.source[: setup.source.index("\n\n", setup.source.index("if missing:"))]


def test_setup_cell_outside_colab_says_how_to_install():
    """Without the course library and otter (here: no site-packages at all), the setup cell stops with instructions."""
    result = subprocess.run([sys.executable, "-I", "-S", "-c", _bootstrap("a1_tfidf")], capture_output=True, text=True)
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("ModuleNotFoundError: course and otter not installed"), error
    assert "make env" in error and 'pip install otter-grader==7.0.0 "git+' in error and "#subdirectory=shared" in error


def test_setup_cell_outside_colab_passes_where_both_are_installed():
    result = subprocess.run([sys.executable, "-c", _bootstrap("a1_tfidf")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stderr
    # grading skips the cell, but a notebook without its tags runs it where otter is the grader's stand-in, a module
    # without __spec__ (importlib.util.find_spec would raise ValueError on it)
    stand_ins = "import sys, types\nsys.modules['otter'] = types.ModuleType('otter')\nsys.modules['course'] = types.ModuleType('course')\n"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", stand_ins + _bootstrap("a1_tfidf")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stderr


def test_setup_cell_in_colab_reports_a_failed_install(tmp_path):
    """In Colab (google.colab imported), a failed pip install shows its last lines, not a bare exit status. (Here in a
    throwaway virtual environment without pip, so that nothing is installed anywhere.)"""
    fake = tmp_path / "google" / "colab"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    config = course_config.CourseConfig("file:///nonexistent/repository", "main")
    source = "import google.colab\n" + course_config.apply(_bootstrap("a1_tfidf"), config)
    result = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", source], capture_output=True, text=True,
                            cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert ("RuntimeError: pip install git+file:///nonexistent/repository@main#subdirectory=shared otter-grader==7.0.0 "
            "failed:") in result.stderr
    assert "No module named pip" in result.stderr.split("failed:", 1)[1]


def test_device_report(monkeypatch):
    from course import training

    monkeypatch.setattr(training.torch.cuda, "is_available", lambda: False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert training.device_report("about a minute") == "no GPU: training runs on the CPU (on a CPU this notebook's training takes about a minute)"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert training.device_report("1–3 minutes").startswith("no GPU: Runtime → Change runtime type → GPU (")
    monkeypatch.setattr(training.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(training.torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    assert training.device_report("about a minute") == "GPU: Tesla T4"


@pytest.mark.parametrize("name", NAMES)
def test_a_check_before_its_cell_names_the_cell_to_run_first(name):
    """otter gives a test None for a name the notebook has not defined: every public test says which cell to run."""
    master = load(name)
    for question, tests in master.tests.items():
        for test in tests:
            env = {}
            exec(test.source, env)
            params = list(inspect.signature(env[test.name]).parameters)
            if test.hidden or not params:
                continue
            with pytest.raises(AssertionError) as raised:
                run_test(test, {})
            message = str(raised.value)
            assert message.startswith(f"{params[0]} is not defined: ") and GUARD in message and "(section " in message, (
                f"{name} {test.name}: {message}")


# ----- Colab: course.colab against a stand-in for google.colab -----

@pytest.fixture
def colab(tmp_path, monkeypatch):
    """A Colab-like runtime in tmp_path/content: the live notebook is tmp_path/drive/a3_self_attention.ipynb."""
    from otter.check.notebook import Notebook

    monkeypatch.setattr(Notebook, "export", Notebook.export)  # restored after the test
    stub = tmp_path / "stub"
    import shutil

    from autograder.student_path import STUB
    shutil.copytree(STUB / "google", stub / "google")
    monkeypatch.syspath_prepend(str(stub))
    for module in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        monkeypatch.delitem(sys.modules, module)
    drive, content, downloads = (tmp_path / n for n in ("drive", "content", "downloads"))
    drive.mkdir()
    content.mkdir()
    release = json.loads(ASSIGNMENTS["a3_self_attention"].release.read_text())
    (drive / "a3_self_attention.ipynb").write_text(json.dumps(release))
    monkeypatch.setenv("COLAB_STUB_NOTEBOOK", str(drive / "a3_self_attention.ipynb"))
    monkeypatch.setenv("COLAB_STUB_DOWNLOADS", str(downloads))
    monkeypatch.chdir(content)
    importlib.invalidate_caches()
    return types.SimpleNamespace(drive=drive, content=content, downloads=downloads, release=release)


def test_colab_setup_writes_the_checks_and_the_notebook_otter_reads(colab):
    from course import colab as course_colab

    summary = course_colab.setup("a3_self_attention", "file:///nowhere", "main")
    assert summary.startswith("public checks from this notebook in ./tests")
    tests = {p.stem: p.read_text() for p in (colab.content / "tests").glob("*.py")}
    assert tests == colab.release["metadata"]["otter"]["tests"]
    assert json.loads((colab.content / "a3_self_attention.ipynb").read_text()) == colab.release


def test_colab_checks_come_from_the_repository_when_the_metadata_is_lost(colab, tmp_path):
    """Should Colab drop the notebook's otter metadata, the checks come from the release in the course repository."""
    from course import colab as course_colab

    bare = dict(colab.release, metadata={})
    (colab.drive / "a3_self_attention.ipynb").write_text(json.dumps(bare))
    repository = tmp_path / "repository"
    (repository / "assignments" / "a3_self_attention").mkdir(parents=True)
    (repository / "assignments" / "a3_self_attention" / "a3_self_attention.ipynb").write_text(json.dumps(colab.release))
    for cmd in (["init", "-q", "-b", "spring"], ["add", "-A"],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "release"]):
        subprocess.run(["git", "-C", str(repository), *cmd], check=True, capture_output=True)
    origin = course_colab.write_files("a3_self_attention", f"file://{repository}", "spring")
    assert origin == f"file://{repository}@spring"
    assert {p.stem for p in (colab.content / "tests").glob("*.py")} == set(colab.release["metadata"]["otter"]["tests"])


def test_colab_export_saves_the_live_notebook_zips_and_downloads(colab):
    """otter refuses export in Colab; course.colab makes it save the notebook as the browser has it, zip, download."""
    from otter.check.notebook import Notebook
    from otter.check.utils import IPythonInterpreter

    from course import colab as course_colab

    course_colab.setup("a3_self_attention", "file:///nowhere", "main")
    grader = Notebook("a3_self_attention.ipynb")
    grader.interpreter = IPythonInterpreter.COLAB  # what otter finds in Colab (str(get_ipython()) names google.colab)
    edited = dict(colab.release, cells=colab.release["cells"] + [nbformat.v4.new_code_cell("answer = 42")])
    (colab.drive / "a3_self_attention.ipynb").write_text(json.dumps(edited))  # the student's work since the setup
    (colab.content / "weights.bin").write_bytes(b"w")
    grader.export(pdf=False, files=["weights.bin"])
    assert grader.interpreter is IPythonInterpreter.COLAB
    (downloaded,) = colab.downloads.glob("a3_self_attention_*.zip")
    with zipfile.ZipFile(downloaded) as zf:
        assert {"a3_self_attention.ipynb", "weights.bin", "a3_self_attention_written_answers.md"} <= set(zf.namelist())
        assert json.loads(zf.read("a3_self_attention.ipynb"))["cells"][-1]["source"] == "answer = 42"


def test_quick_switch_caps_training_and_data(monkeypatch):
    import torch

    from course import data, language_model, quick, training

    monkeypatch.setenv(quick.ENV, "1")
    model = torch.nn.Linear(3, 1)
    batches = [(torch.randn(2, 3), torch.ones(2)) for _ in range(quick.FIT_BATCHES + 15)]
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(model.training))
    history = training.fit(model, batches, batches[:1], torch.optim.SGD(model.parameters(), lr=0.1), epochs=9,
                           live_plot=False)
    assert len(history["val_loss"]) == 1 and seen.count(True) == quick.FIT_BATCHES
    lm = torch.nn.Sequential(torch.nn.Embedding(5, 5))
    ids = torch.randint(5, (500,))
    lm_history = language_model.train(lm, ids, ids, steps=10_000, block_size=8, eval_every=10_000, live_plot=False)
    assert lm_history["step"] == [quick.LM_STEPS]
    monkeypatch.setattr(data, "load_imdb", lambda splits: {
        "train": _FakeSplit(list(range(30_000))), "test": _FakeSplit(list(range(25_000)))})
    splits = data.imdb_splits()
    assert {name: len(texts) for name, (texts, _) in splits.items()} == quick.IMDB_REVIEWS
    for name, (_, labels) in splits.items():  # a quick run's accuracy means something only with both labels
        assert 0.4 < sum(labels) / len(labels) < 0.6, name
    assert len(data.imdb_splits(quick=False)["test"][0]) == 25_000  # what grading data is made from
    monkeypatch.setenv(quick.ENV, "0")
    assert not quick.enabled() and len(data.imdb_splits()["train"][0]) == 20_000


class _FakeSplit:
    """A split ordered by label, as IMDB's train and test splits are (the first half negative)."""
    def __init__(self, items, size=None):
        self.items, self.size = items, size or len(items)

    def shuffle(self, seed):
        items = list(self.items)
        random.Random(seed).shuffle(items)
        return _FakeSplit(items, self.size)

    def __getitem__(self, column):
        return [f"review {i}" for i in self.items] if column == "text" else [int(i >= self.size // 2) for i in self.items]
