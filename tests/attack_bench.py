"""`make attack-bench`: adversarial submissions graded as Gradescope grades them, one row each.

    python tests/attack_bench.py [--quick] [--jobs N] [NAME ...]

Every submission of the catalogue below (the attacks of tests/test_adversarial_limits.py and
test_adversarial_boundary.py, on assignment 1) is graded through
the zip's own run_autograder, in the Gradescope environment (`make gradescope-env`), with the zip's own limits
(`--quick`: the short limits the tests use), each measured from outside as `make bench-grading` measures. Columns:
points gained over what the submission deserves without its attack (must be 0), points lost beyond it (what the
attack cost the questions it does not concern: should be 0), no hidden text ("LEAKED") in results.json, whether the zip's entry point wrote
results.json (must be yes), the peak memory of the whole process tree (PSS, at most 700 MB), wall seconds (at most
540 s), the processes of the grading alive after it (must be 0), files and System V IPC objects of the notebook's
user left after it (must be 0). Each grading runs
in the emulated Gradescope container (768 MB, 0.5 CPU) where this machine allows it. Exit status 1 if any row breaks
a bound.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
os.environ.setdefault("COURSE_GRANT_KERNEL_ACCESS", "1")

import nbformat  # noqa: E402

import types  # noqa: E402

import test_adversarial_boundary  # noqa: E402
import test_adversarial_limits  # noqa: E402
from autograder.assignments import ASSIGNMENTS, BUILD  # noqa: E402
from test_grading import FULL, _insert_after_imports  # noqa: E402

attacks = types.SimpleNamespace(**{**vars(test_adversarial_limits), **vars(test_adversarial_boundary)})
A1 = ASSIGNMENTS["a1_tfidf"]
REFERENCE = BUILD / "a1_tfidf" / "reference" / "a1_tfidf-reference.zip"
QUICK_LIMITS = {"COURSE_CELL_TIMEOUT_S": "15", "COURSE_NOTEBOOK_TIMEOUT_S": "40", "COURSE_CALL_TIMEOUT_S": "5",
                "COURSE_TESTS_TIMEOUT_S": "20"}


@dataclasses.dataclass
class Attack:
    name: str
    make: Callable[[Path], Path]  # writes the submission into a folder; returns what to grade
    deserves: float  # its score without the attack: what it may get, no more
    env: dict = dataclasses.field(default_factory=dict)


def _reference(edit=None, weights=True) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        with zipfile.ZipFile(REFERENCE) as zf:
            notebook = nbformat.reads(zf.read("a1_tfidf.ipynb").decode(), as_version=4)
            if weights:
                (folder / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
        if edit:
            edit(notebook)
        nbformat.write(notebook, folder / "a1_tfidf.ipynb")
        return folder / "a1_tfidf.ipynb"
    return make


def _inserted(source):
    return _reference(_insert_after_imports(source))


def _appended(*sources):
    return _reference(lambda nb: nb.cells.extend(map(nbformat.v4.new_code_cell, sources)))


def _stub_with_files(files: dict) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "a1_tfidf_export.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a1_tfidf.ipynb", A1.release.read_bytes())
            for name, content in files.items():
                zf.writestr(name, content)
        return path
    return make


def _malformed(content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / "a1_tfidf.ipynb").write_bytes(content)
        return folder / "a1_tfidf.ipynb"
    return make


PAYLOAD = "import os; os.system('touch /tmp/course-attack-bench-ran')\n"
WRONG = FULL - 2  # a wrong tfidf_l2 loses q4
ROOT_KERNEL = {"COURSE_KERNEL_USER": ""}
CATALOGUE = [
    Attack("files otter or Python would read (stub)", _stub_with_files({
        ".OTTER_LOG": b"\x80\x04c__builtin__\nexec\n", "x.otter": "{}", "triton/language.py": PAYLOAD,
        "sitecustomize.py": PAYLOAD, "evil.pth": PAYLOAD, "tqdm.py": PAYLOAD, "zmq/__init__.py": PAYLOAD,
        "course/grading.py": PAYLOAD}), 0),
    Attack("a very deep folder tree", _stub_with_files({"d/" * 1500 + "end.txt": "deep"}), 0),
    Attack("30,000 cells", _reference(attacks._many_cells), FULL),
    Attack("a 2 MB cell", _reference(attacks._huge_cell), FULL),
    Attack("40 MB of outputs", _reference(attacks._huge_outputs), FULL),
    Attack("not JSON", _malformed(b"this is not a notebook"), 0),
    Attack("JSON nested 100,000 deep", _malformed(b"[" * 100_000 + b"]" * 100_000), 0),
    Attack("endless loop", _inserted("while True:\n    pass"), FULL),
    Attack("a process that stops itself", _inserted("import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)"), FULL),
    Attack("ignores interruptions and timers", _inserted(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nsignal.setitimer(signal.ITIMER_REAL, 0)\n"
        "while True:\n    pass"), FULL),
    Attack("cells that together run too long", _appended(*["import time\ntime.sleep(100)"] * 3), FULL),
    Attack("memory bomb in a cell", _inserted("def hog():\n" + attacks.ALLOCATE_WITHOUT_END + "hog()"), FULL),
    Attack("memory bomb in a call from a test", _appended("def tfidf_l2(multi_hot_rows, idf):\n"
                                                          + attacks.ALLOCATE_WITHOUT_END), FULL),
    *[Attack(f"memory in {name}", _inserted(source), FULL)
      for name, source in attacks.MEMORY_OUTSIDE_THE_DATA_LIMIT.items()],
    Attack("fork bomb", _inserted("import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                                  "        time.sleep(0.05)"), FULL),
    Attack("a flood of output", _inserted("import sys\nwhile True:\n    sys.stdout.write('x' * 1_000_000 + '\\n')"), FULL),
    Attack("os._exit", _inserted("import os\nos._exit(0)"), FULL),
    Attack("segfault", _inserted("import ctypes\nctypes.string_at(0)"), FULL),
    Attack("daemons and files left behind", _inserted(attacks.LEFTOVERS), FULL),
    Attack("hidden inputs in messages", _appended(attacks.LEAKING), FULL - 5),
    Attack("tampering with torch and the tests (as root)", _appended(attacks.WRONG_TFIDF + attacks.TAMPERING), WRONG,
           ROOT_KERNEL),
    Attack("comparisons that lie", _appended(attacks.LYING_RESULTS), FULL - 5),
    Attack("a thread that patches and rewrites (as root)", _appended(attacks.THREAD_PATCHING_AND_REWRITING), WRONG,
           ROOT_KERNEL),
    Attack("a thread that never stops", _appended(attacks.STUBBORN_THREAD), FULL),
    Attack("patches made when called (as root)", _appended(attacks.PATCHING_WHEN_CALLED), WRONG, ROOT_KERNEL),
    Attack("a detached rewriter (as root)", _appended(attacks.DETACHED_PROCESS), WRONG, ROOT_KERNEL),
    Attack("a pickle to every listening socket", _appended(attacks.PICKLE_TO_EVERY_SOCKET.replace(
        "%s", "/tmp/course-attack-bench-ran")), FULL),
    Attack("a forged results.json", _appended(attacks.FORGED_RESULTS_FILE), FULL),
    Attack("endless when tested", _appended(attacks.ENDLESS_WHEN_TESTED), FULL),
    Attack("everything endless when tested", _appended(attacks.EVERYTHING_ENDLESS_WHEN_TESTED), FULL),
    Attack("serving switched off", _appended(attacks.SERVING_SWITCHED_OFF), WRONG),
    *[Attack(f"a forged server ({kind})", _appended(attacks.FORGED_SERVER % ("/tmp/course-attack-bench-ran", replies)),
             WRONG) for kind, replies in (("pickle", 3), ("yes to everything", 10_000))],
    Attack("reading the hidden tests", _appended(attacks.HIDDEN_TESTS_READ), FULL),
    Attack("rewriting the grader's tests, code and data", _appended(attacks.WRONG_TFIDF + attacks.GRADERS_FILES_REWRITE),
           WRONG),
    Attack("tests turned into passes in the first cell (as root)", _reference(
        lambda nb: (_insert_after_imports(attacks.TESTS_TURNED_INTO_PASSES)(nb),
                    nb.cells.append(nbformat.v4.new_code_cell(attacks.WRONG_TFIDF)))), WRONG, ROOT_KERNEL),
    Attack("reaching the grading processes", _appended(attacks.GRADER_PROCESSES), FULL),
    Attack("a crash when tested", _appended(attacks.CRASH_WHEN_TESTED), FULL),
    # the grading boundary (issue 23)
    Attack("torch replaced where a test computes", _appended(attacks.TORCH_REPLACED_WHERE_TESTS_COMPUTE), FULL - 2),
    Attack("hidden inputs in an exception's place", _appended(attacks.FORGED_EXCEPTION_TEXT), FULL - 2),
    Attack("a reply that expands when read", _appended(attacks.EXPANDING_REPLY), FULL - 2),
    Attack("one question slower than every budget", _appended(attacks.SLOW_QUESTION), FULL - 3),
    # the container (issue 23)
    Attack("the network (TCP, UDP, Unix) to listeners", None, FULL),  # made in run(): listeners of its own
    Attack("the grader's state (command lines, memory, results)", None, FULL),
    Attack("System V IPC, POSIX queues, files in /run/lock", _inserted(attacks.LEFTOVERS_OF_OTHER_KINDS), FULL),
]


def _hidden_case_names() -> list[str]:
    with zipfile.ZipFile(A1.zip_path) as zf:
        manifest = json.loads(zf.read("grading.json"))
    return [case["name"] for question in manifest["questions"] for case in question["cases"] if case["hidden"]]


def _objects_left(uid) -> int:
    """Files of the notebook's user in the world-writable folders, and its System V IPC objects."""
    if not isinstance(uid, int):
        return 0
    from autograder.sandbox.users import ipc_objects, writable_places

    files = sum(1 for folder in writable_places() if os.path.isdir(folder) for entry in os.scandir(folder)
                if entry.stat(follow_symlinks=False).st_uid == uid)
    return files + sum(len(ids) for ids in ipc_objects(uid).values())


def run(attack: Attack, python: Path, quick: bool) -> dict:
    from autograder.bench import measure

    with tempfile.TemporaryDirectory(prefix="attack-") as tmp:
        folder = Path(tmp)
        listeners = None
        if attack.name.startswith("the network"):
            from test_sandbox import _listeners

            listening = Path(tempfile.mkdtemp(prefix="course-attack-", dir="/tmp"))
            os.chmod(listening, 0o755)
            listeners = _listeners(listening)
            tcp, udp, unix = listeners
            make = _appended(attacks.REACH_OUT % {"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1],
                                                  "unix": str(listening / "listener")})
        elif attack.name.startswith("the grader's state"):
            hidden = _hidden_case_names()[0]
            half = len(hidden) // 2
            make = _appended(attacks.GRADERS_STATE % {"first": hidden[:half][::-1], "second": hidden[half:][::-1]})
        else:
            make = attack.make
        submission = make(folder)
        env = {**os.environ, **(QUICK_LIMITS if quick else {}), **attack.env}
        row = measure([sys.executable, "-m", "autograder.grade", str(submission), "--assignment", A1.name,
                       "--out", str(folder / "out"), "--python", str(python)], env=env)
        results = json.loads((folder / "out" / "results.json").read_text())
        zip_run = json.loads((folder / "out" / "run.json").read_text())
        try:
            report = json.loads((folder / "out" / "supervisor.json").read_text())
        except (OSError, ValueError):
            report = {}
        if listeners is not None:
            from test_sandbox import _what_listeners_saw

            reached = _what_listeners_saw(*listeners)
            for listener in listeners:
                listener.close()
            subprocess.run(["rm", "-rf", str(listening)], check=False)
        else:
            reached = []
    score = sum(t.get("score", 0) for t in results["tests"])
    return {"attack": attack.name, "gained": max(0.0, score - attack.deserves) + len(reached),
            "lost": max(0.0, attack.deserves - score), "leaked": "LEAKED" in json.dumps(results, ensure_ascii=False),
            "by_zip": zip_run["results_by_zip"], "peak_mb": row["peak_mb"], "wall_s": row["wall_s"],
            "left": len(zip_run["left"]) + _objects_left(report.get("kernel_uid")),
            "cgroup_mb": (zip_run.get("container") or {}).get("peak_mb")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="attacks whose name contains one of these (default: all)")
    parser.add_argument("--quick", action="store_true", help="the tests' short limits instead of the zip's")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--python", default=str(BUILD / "gradescope-env" / "bin" / "python"))
    args = parser.parse_args(argv)
    chosen = [a for a in CATALOGUE if not args.names or any(n in a.name for n in args.names)]
    print(f"{'attack':<52} {'gained':>6} {'lost':>5} {'results by zip':>14} {'peak MB':>7} {'cgroup MB':>9} "
          f"{'wall s':>6} {'left':>4}", flush=True)
    ok = True
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(lambda attack: run(attack, Path(args.python), args.quick), chosen):
            good = row["gained"] == 0 and not row["leaked"] and row["by_zip"] and row["peak_mb"] <= 700 \
                and row["wall_s"] <= 540 and row["left"] == 0
            ok &= good
            print(f"{row['attack'][:52]:<52} {row['gained']:>6g} {row['lost']:>5g} "
                  f"{'yes' if row['by_zip'] else 'NO':>14} {row['peak_mb']:>7} "
                  f"{row['cgroup_mb'] if row['cgroup_mb'] is not None else '-':>9} {row['wall_s']:>6} {row['left']:>4}"
                  f"{'' if good else '  <-- out of bounds'}", flush=True)
    if os.path.exists("/tmp/course-attack-bench-ran"):
        print("a payload of a submission ran", flush=True)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
