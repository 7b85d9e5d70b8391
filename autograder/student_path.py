"""make student-path: every release notebook run as a student runs it in Colab, from a fresh runtime to a graded zip.

    python -m autograder.student_path [NAME ...] [--jobs N] [--keep]

1. A "Colab image", built once and cached in build/student-path/ (keyed on what goes into it): a virtual environment
   without system site-packages holding what Colab preinstalls and the course needs (torch, numpy, pandas,
   matplotlib, datasets with pyarrow, tqdm, ipykernel, at the versions of requirements.txt) and a stand-in for
   `google.colab` (autograder/colab_stub: the kernel presents itself as Colab's, to the notebook and to otter).
2. The course repository as a git URL: a `file://` clone of HEAD in a temporary folder, plus the working tree's
   uncommitted changes (tracked files, and untracked files git does not ignore), committed there on the branch that
   course.toml names. The table's header says which commit was tested and how many files were uncommitted.
3. For each assignment, a fresh runtime: a new virtual environment that sees the image's packages and nothing else
   (checked: no course library, no otter, nothing of this repository on sys.path). In it runs the release notebook
   (assignments/NAME/NAME.ipynb, which must be what the master builds) with the reference answers in its solution
   cells (taken from otter's autograder notebook; no other cell changes) and the clone's file:// URL in its setup
   cell, with COURSE_QUICK=1 and the data mirror (COURSE_DATA_DIR) standing in for the Hub: the setup cell installs
   the course library from the git URL and otter, then every check, the training and the export cell run; every
   public check must pass. Then the kernel restarts and the first check runs before the cell it depends on: it
   must name the cell to run first.
4. The zip the export cell downloaded is graded as Gradescope grades it (autograder.grade, the repository's Python).

Fails unless every function question has full marks and every weights question is graded with a message (quick
training makes weights that do not pass). One row per assignment: setup seconds (fresh runtime and setup cell), seconds
from the fresh runtime to the first `grader.check` done, notebook seconds (every cell), grading seconds, scores.
Results also go to build/student-path/results.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder import config as course_config
from autograder.assignments import ASSIGNMENTS, BUILD, ROOT, Assignment

OUT = BUILD / "student-path"
STUB = ROOT / "autograder" / "colab_stub"
# what Colab preinstalls that the course uses; their versions come from requirements.txt
IMAGE_PACKAGES = ("torch", "numpy", "pandas", "matplotlib", "datasets", "pyarrow", "tqdm", "ipykernel")
KERNEL_CLASS = "google.colab._kernel.Kernel"
CELL_TIMEOUT_S = 900
GUARD = "is not defined: run the cell that defines it"


def log(message: str) -> None:
    print(message, flush=True)


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    return result


def image_pins() -> list[str]:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    missing = [name for name in IMAGE_PACKAGES if name not in pins]
    if missing:
        raise ValueError(f"requirements.txt pins no version of {missing}")
    return [f"{name}=={pins[name]}" for name in IMAGE_PACKAGES]


def site_packages(python: Path) -> Path:
    return Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())


def colab_image() -> Path:
    """The cached Colab image (a venv): its folder, built when missing."""
    pins = image_pins()
    digest = hashlib.sha256(f"{sys.version_info[:2]}\n{pins}".encode())
    for path in sorted(STUB.rglob("*.py")):
        digest.update(path.relative_to(STUB).as_posix().encode() + path.read_bytes())
    image = OUT / f"colab-image-{digest.hexdigest()[:12]}"
    if (image / ".ready").exists():
        return image
    for old in OUT.glob("colab-image-*"):
        shutil.rmtree(old, ignore_errors=True)
    log(f"  Colab image: a virtual environment with {' '.join(pins)} -> {image.relative_to(ROOT)} (once) ...")
    start = time.time()
    run([sys.executable, "-m", "venv", image])
    run([image / "bin" / "python", "-m", "pip", "install", "-q", *pins])
    shutil.copytree(STUB / "google", site_packages(image / "bin" / "python") / "google", dirs_exist_ok=True)
    (image / ".ready").write_text(" ".join(pins) + "\n")
    log(f"  Colab image: ready in {time.time() - start:.0f} s")
    return image


@dataclass
class Clone:
    url: str      # file:// URL of the clone
    branch: str
    commit: str   # HEAD of this repository
    uncommitted: list[str] = field(default_factory=list)


def clone_repository(target: Path, branch: str) -> Clone:
    """A file:// clone of HEAD with the working tree's uncommitted changes committed in it, on `branch`."""
    head = run(["git", "-C", ROOT, "rev-parse", "HEAD"]).stdout.strip()
    run(["git", "clone", "-q", "--no-hardlinks", f"file://{ROOT}", target])
    run(["git", "-C", target, "checkout", "-q", "-B", branch, head])
    entries = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=all", "-z"]).stdout.split("\0")
    paths = []
    while entries:
        entry = entries.pop(0)
        if entry:
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename or copy: the original path follows as an entry of its own
                paths.append(entries.pop(0))
    for path in paths:
        source, copy = ROOT / path, target / path
        if source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
        else:
            copy.unlink(missing_ok=True)
    if paths:
        run(["git", "-C", target, "add", "-A"])
        run(["git", "-C", target, "-c", "user.name=student-path", "-c", "user.email=student-path@localhost",
             "commit", "-q", "-m", "uncommitted changes of the working tree (make student-path)"])
    return Clone(f"file://{target}", branch, head, paths)


def filled_release(assignment: Assignment, dist: Path, clone: Clone):
    """The release notebook with the reference answers in its solution cells and the clone's URL in its setup cell."""
    import nbformat

    from autograder.build import student_notebook_json

    if assignment.release.read_text() != student_notebook_json(dist, assignment):
        raise RuntimeError(f"{assignment.release} is not what the master builds: run `make release` first")
    release = nbformat.read(assignment.release, as_version=4)
    reference = nbformat.read(dist / "autograder" / f"{assignment.name}.ipynb", as_version=4)
    if [c.cell_type for c in release.cells] != [c.cell_type for c in reference.cells]:
        raise RuntimeError(f"{assignment.name}: the release and otter's autograder notebook have different cells")
    filled = 0
    for cell, answer in zip(release.cells, reference.cells):
        if cell.cell_type == "code" and cell.source != answer.source:
            if "..." not in cell.source:
                raise RuntimeError(f"{assignment.name}: a code cell without a stub differs from the reference:\n{cell.source[:300]}")
            cell.source, filled = answer.source, filled + 1
    setup = [cell for cell in release.cells if course_config.is_setup_cell(cell)]
    setup[0].source = course_config.apply(setup[0].source, course_config.CourseConfig(clone.url, clone.branch))
    return release, filled


def fresh_runtime(image: Path, folder: Path) -> Path:
    """A new venv that sees the image's packages (like a fresh Colab runtime); returns its python."""
    run([sys.executable, "-m", "venv", "--without-pip", folder])
    python = folder / "bin" / "python"
    (site_packages(python) / "colab-image.pth").write_text(f"import site; site.addsitedir({str(site_packages(image / 'bin' / 'python'))!r})\n")
    probe = ("import importlib.util, json, sys; print(json.dumps({'course': bool(importlib.util.find_spec('course')), "
             "'otter': bool(importlib.util.find_spec('otter')), 'torch': bool(importlib.util.find_spec('torch')), "
             "'path': sys.path}))")
    found = json.loads(run([python, "-c", probe], env=clean_environment(), cwd=folder).stdout)
    inside = [p for p in found["path"] if p and Path(p).resolve().is_relative_to(ROOT)
              and not Path(p).resolve().is_relative_to(image.resolve())]  # the image is cached in build/
    if found["course"] or found["otter"] or not found["torch"] or inside:
        raise RuntimeError(f"the fresh runtime is not fresh: {found}")
    return python


def clean_environment() -> dict[str, str]:
    """This process's environment without what points into the repository or its virtual environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP") and not k.startswith(("COURSE_", "JUPYTER"))}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def kernel_manager(python: Path, folder: Path):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = folder / "colab"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}", f"--IPKernelApp.kernel_class={KERNEL_CLASS}"],
        "display_name": "Python 3 (Colab stand-in)", "language": "python"}))
    return KernelManager(kernel_name="colab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder)]))


def text_of(outputs) -> str:
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def execute(nb, python: Path, folder: Path, cwd: Path, env: dict, timings: list | None = None) -> None:
    from nbclient import NotebookClient

    hooks = {}
    if timings is not None:
        hooks = {"on_cell_execute": lambda cell, cell_index: timings.append([cell_index, time.time(), None]),
                 "on_cell_executed": lambda cell, cell_index, execute_reply: timings[-1].__setitem__(2, time.time())}
    client = NotebookClient(nb, km=kernel_manager(python, folder / "kernels"), timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(cwd)}}, **hooks)
    with open(folder / "kernel.log", "a") as kernel_log:  # what the kernel process itself prints (not the cells)
        client.execute(env=env, stdout=kernel_log, stderr=kernel_log)


def weights_questions(assignment: Assignment) -> set[str]:
    from autograder.masters import load, reads_submitted_files

    master = load(assignment.name)
    return {q for q, tests in master.tests.items() if all(reads_submitted_files(t) for t in tests)}


def student_path(assignment: Assignment, image: Path, clone: Clone, work: Path, mirror: Path) -> dict:
    import nbformat

    from autograder.build import copy_autograder_zip, otter_assign
    from autograder.grade import grade, per_question, questions_of
    from autograder.masters import load as load_master

    log(f"== {assignment.name}")
    row: dict = {"assignment": assignment.name, "problems": []}
    folder = work / assignment.name
    home, content, drive, downloads = (folder / name for name in ("home", "content", "drive", "downloads"))
    for path in (home, content, drive, downloads):
        path.mkdir(parents=True)
    dist = otter_assign(assignment)
    copy_autograder_zip(assignment, dist)  # grading goes by the current masters
    nb, row["filled_cells"] = filled_release(assignment, dist, clone)
    notebook_file = drive / f"{assignment.name}.ipynb"  # the notebook "in the browser": not on the runtime's disk
    nbformat.write(nb, notebook_file)

    start = time.time()
    python = fresh_runtime(image, folder / "runtime")
    runtime_s = time.time() - start
    env = clean_environment()
    env.update(HOME=str(home), COURSE_QUICK="1", COURSE_DATA_DIR=str(mirror), COLAB_STUB_NOTEBOOK=str(notebook_file),
               COLAB_STUB_DOWNLOADS=str(downloads), PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")))
    timings: list = []
    try:
        execute(nb, python, folder, content, env, timings)
    except Exception as error:  # noqa: BLE001 - reported in the row
        row["problems"].append(f"the notebook stopped: {str(error).strip().splitlines()[-1][:300] if str(error).strip() else type(error).__name__}")
    finally:
        nbformat.write(nb, folder / f"{assignment.name}.executed.ipynb")
    done = {index: (began, ended) for index, began, ended in timings if ended is not None}
    setup_index = next(i for i, c in enumerate(nb.cells) if course_config.is_setup_cell(c))
    checks = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith("grader.check(")]
    if setup_index in done:
        row["setup_s"] = round(runtime_s + done[setup_index][1] - done[setup_index][0], 1)
        row["setup_output"] = text_of(nb.cells[setup_index].get("outputs", [])).strip()
    if checks and checks[0] in done:
        row["first_check_s"] = round(done[checks[0]][1] - start, 1)
    if timings:
        row["notebook_s"] = round(max(e or b for _, b, e in timings) - min(b for _, b, _ in timings), 1)
    for index in checks:
        output = text_of(nb.cells[index].get("outputs", []))
        if index in done and "passed" not in output.lower():
            row["problems"].append(f"{nb.cells[index].source.strip()} did not pass: {output.strip()[:300]}")

    # out of order: restart, run otter's init cell, then the first check before the cell it depends on
    init = next(c for c in nb.cells if c.source.startswith("# Initialize Otter"))
    if checks:
        probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(init.source),
                                                nbformat.v4.new_code_cell(nb.cells[checks[0]].source)])
        try:
            execute(probe, python, folder, content, env)
            row["out_of_order"] = text_of(probe.cells[1].outputs)
        except Exception as error:  # noqa: BLE001
            row["out_of_order"] = str(error)
        if GUARD not in row["out_of_order"]:
            row["problems"].append(f"after a restart, {nb.cells[checks[0]].source.strip()} does not name the cell to run "
                                   f"first: {row['out_of_order'].strip()[-300:]}")

    zips = sorted(downloads.glob(f"{assignment.name}_*.zip"))
    if len(zips) != 1:
        row["problems"].append(f"the export cell downloaded {len(zips)} zips, not one: {[z.name for z in zips]}")
        return row
    with zipfile.ZipFile(zips[0]) as zf:
        row["zip"] = sorted(zf.namelist())
        written = load_master(assignment.name).written
        answers_file = f"{assignment.name}_written_answers.md"
        if written and answers_file not in row["zip"]:
            row["problems"].append(f"the export zip does not carry the written answers ({answers_file}): {row['zip']}")
        elif written:
            text = zf.read(answers_file).decode()
            missing = [w["name"] for w in written if f"## {w['name']}" not in text]
            if missing:
                row["problems"].append(f"{answers_file} has no heading for {missing}")
    began = time.time()
    results = grade(zips[0], assignment, folder / "graded", quiet=True)
    row["grade_s"] = round(time.time() - began, 1)
    scores = per_question(results)
    weights = weights_questions(assignment)
    row["functions"] = [sum(s for q, (s, _) in scores.items() if q not in weights),
                        sum(m for q, (_, m) in scores.items() if q not in weights)]
    row["weights"] = {}
    check = next((t for t in results.get("tests", []) if t.get("name") == "Submission check"), None)
    public = [t for t in results.get("tests", []) if not (t.get("extra_data") or {}).get("hidden", True)]
    if check is None or check.get("visibility") != "visible" or not public or \
            any(t.get("visibility") != "visible" for t in public):
        row["problems"].append("the grading does not show the submission check and the public checks at once")
    for question, test in questions_of(results).items():
        name, output = question, test.get("output", "")
        if name in weights:
            message = next((line.strip(" ❌✅") for line in output.splitlines() if "❌" in line and "failed" in line), "passed")
            row["weights"][name] = {"score": test.get("score"), "max": test.get("max_score"), "message": message}
            if not output.strip() or "Traceback" in output or "stopped" in output or (
                    test.get("score") != test.get("max_score") and message == "passed"):
                row["problems"].append(f"{name} is not graded with a clear message: {output[:300]}")
        elif test.get("score") != test.get("max_score"):
            row["problems"].append(f"{name}: {test.get('score')} / {test.get('max_score')}: {output[-400:]}")
    if not scores or set(weights) - set(scores):
        row["problems"].append(f"grading returned no score for {sorted(set(weights) - set(scores)) or 'any question'}: "
                               f"{results.get('output', '')[:300]}")
    return row


def print_table(rows: list[dict], clone: Clone) -> None:
    uncommitted = f" + {len(clone.uncommitted)} uncommitted files" if clone.uncommitted else ""
    log(f"\nstudent path: commit {clone.commit[:10]}{uncommitted}, installed from {clone.url}@{clone.branch}, "
        "COURSE_QUICK=1, a fresh Colab-like runtime per assignment")
    header = ["assignment", "setup_s", "first_check_s", "notebook_s", "grade_s", "functions", "weights", "result"]
    lines = [header]
    for r in rows:
        functions = f"{r['functions'][0]:g}/{r['functions'][1]:g}" if "functions" in r else "-"
        weights = ", ".join(f"{w['score']:g}/{w['max']:g}" for w in r.get("weights", {}).values()) or "-"
        lines.append([r["assignment"], *(f"{r[k]:g}" if k in r else "-" for k in ("setup_s", "first_check_s", "notebook_s", "grade_s")),
                      functions, weights, "ok" if not r["problems"] else "FAILED"])
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        log("  ".join(str(v).ljust(w) for v, w in zip(line, widths)))
    for r in rows:
        for name, w in r.get("weights", {}).items():
            log(f"  {r['assignment']} {name}: {w['score']:g}/{w['max']:g} ({w['message'][:110]})")
        for problem in r["problems"]:
            log(f"  {r['assignment']} FAILED: {problem}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="assignments (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (runtimes, notebooks, zips)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="assignments run at once, each in its own runtime and folder (their timings then include "
                             "the others' load)")
    args = parser.parse_args(argv)
    from course.data import DATA_DIR_ENV, find_data_dir

    mirror = find_data_dir()
    if mirror is None:
        log(f"no data mirror: set {DATA_DIR_ENV} (the mirror stands in for the Hugging Face Hub here)")
        return 2
    names = args.names or list(ASSIGNMENTS)
    total = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    image = colab_image()
    work = Path(tempfile.mkdtemp(prefix="student-path-"))
    try:
        clone = clone_repository(work / "repository", course_config.load().branch)
        log(f"  repository: {clone.url}@{clone.branch} (commit {clone.commit[:10]}"
            f"{f' + {len(clone.uncommitted)} uncommitted files' if clone.uncommitted else ''})")
        if args.jobs > 1:
            import concurrent.futures
            import functools
            import multiprocessing

            run = functools.partial(student_path, image=image, clone=clone, work=work, mirror=mirror)
            with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                rows = list(pool.map(run, [ASSIGNMENTS[name] for name in names]))
        else:
            rows = [student_path(ASSIGNMENTS[name], image, clone, work, mirror) for name in names]
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows, clone)
    log(f"total {time.time() - total:.0f} s")
    (OUT / "results.json").write_text(json.dumps({"commit": clone.commit, "uncommitted": clone.uncommitted,
                                                  "rows": rows, "total_s": round(time.time() - total, 1)}, indent=2))
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
