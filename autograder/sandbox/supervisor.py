"""The grading supervisor: what Gradescope runs for every submission (the zip's run_autograder -> supervise.py),
and what `make grade` runs, byte for byte, in a folder laid out like /autograder.

It holds every limit from outside the notebook's processes, which cannot signal, stop or outwait it, and it writes
results/results.json in every case: a complete file (every question at 0, "grading stopped before this test ran")
before anything of the submission is touched, then the real one, by `deadline_s` at the latest (a watchdog thread
writes what is known and ends everything if the main work has not finished by then).

    1. the submission is data (sandbox.submission): the notebook and the declared student files are copied out,
       everything else is left where it is, unread, and named in one line; the notebook is parsed unprivileged;
    2. the zygote (sandbox.zygote) imports the libraries once and forks the notebook's process (sandbox.kernel),
       which gives up root for a user of its own (sandbox.users); the zygote stays on as the test process
       (sandbox.test_runner) and reads the tests, which the notebook's user cannot;
    3. cell by cell, the supervisor sends the notebook's code to its process and waits, watching the time of each
       cell and of all of them, and the memory of the whole process tree (sandbox.limits); a cell that runs too
       long is interrupted, and killed with its process if it does not stop; over the memory limit the notebook's
       processes are killed;
    4. the notebook's other processes are killed, its process serves its objects to the test process, which runs
       the tests that take parameters, under the tests' time limits; then every process of the notebook's user is
       killed and its files removed, and the test process runs the tests of the submitted files (the weights),
       under a time limit of their own, in a fresh test process if the first one is gone;
    5. results.json from the zip's own questions and points (grading.json) and the verdicts; nothing the
       notebook's process says decides a score.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from . import cgroups, users, wire
from .limits import Limits, TreeMemory
from .processes import become_subreaper, kill_tree, reap
from .results import Results, write_atomically
from .submission import Rejected, collect, read_cells

GRADESCOPE_ROOT = Path("/autograder")
READY_TIMEOUT_S = 120  # importing torch at 0.5 vCPU, twice over on a loaded machine
SUPERVISOR_OOM_SCORE_ADJ = -1000  # the OOM killer never takes the supervisor: results.json is written in every case
GRANT_ACCESS_ENV = "COURSE_GRANT_KERNEL_ACCESS"  # "1": open the interpreter's folders to the notebook's user here too


class NotebookStopped(Exception):
    """The notebook's process is gone (ended, or killed by the supervisor); the message says why, to the student."""


def main(root: Path) -> int:
    try:
        supervisor = Supervisor(Path(root))
    except Exception:  # noqa: BLE001 - an autograder that cannot even be read (a broken grading.json)
        log(f"the autograder cannot start:\n{traceback.format_exc()}")
        (Path(root) / "results").mkdir(exist_ok=True)
        (Path(root) / "results" / "results.json").write_text(json.dumps({
            "score": 0, "tests": [], "output": "The autograder could not start; please tell the course staff."}))
        return 0
    return supervisor.run()


class Supervisor:
    def __init__(self, root: Path):
        self.started = time.monotonic()
        self.root, self.source = root, root / "source"
        self.config = json.loads((self.source / "grading.json").read_text())
        self.limits = Limits.from_config(self.config["limits"])
        self.deadline = self.started + self.limits.deadline_s
        self.results = Results(self.config)
        self.results_path = root / "results" / "results.json"
        self.user: users.KernelUser | None = None
        self.private: Path | None = None
        self.zygote: subprocess.Popen | None = None
        self.kernel_pid: int | None = None
        self.kernel: wire.Connection | None = None
        self.tests: wire.Connection | None = None
        self.memory: TreeMemory | None = None
        self.stopped: str | None = None  # why the notebook's process is gone
        self.activity = "as it started"  # what the notebook's process was doing, for messages
        self.ended = False  # the notebook's processes have been ended (the watch only measures from then on)
        self.output = _Output(self.limits.output_kb * 1024)
        self.notebook_group: cgroups.Cgroup | None = None  # the notebook's processes' own memory cgroup, if any
        self.mechanisms: dict = {}  # what holds the notebook here (oom_score_adj, network, memory), for the report
        self._finished = threading.Event()

    # ---- the run ----
    def run(self) -> int:
        self.results.write(self.results_path)
        threading.Thread(target=self._watchdog, name="deadline", daemon=True).start()
        try:
            self._grade()
        except Exception:  # noqa: BLE001 - a bug of the grader's: results.json says so, and what was graded stands
            log(f"the grader failed:\n{traceback.format_exc()}")
            self.results.fail_missing("❌ Not graded: the grader failed while grading this test; please tell the "
                                      "course staff")
            self.results.note("The grader failed while grading your submission; please tell the course staff "
                              "(the scores above are those it could give).")
        finally:
            with self.results.lock:
                if not self._finished.is_set():
                    self._finished.set()
                    self._cleanup()
                    self.results.write(self.results_path)
        return 0

    def _watchdog(self) -> None:
        if self._finished.wait(max(self.deadline - time.monotonic(), 0)):
            return
        with self.results.lock:
            if self._finished.is_set():
                return
            self._finished.set()
            log("the deadline passed before grading finished: writing what is known")
            self.results.fail_missing(f"❌ Not graded: grading had to stop at {self.limits.deadline_s:g} s, before "
                                      "this test could run")
            self.results.note(f"Grading stopped at {self.limits.deadline_s:g} s (Gradescope allows 10 minutes): the "
                              "tests it had not run yet score 0.")
            self._cleanup()
            self.results.write(self.results_path)
        os._exit(0)

    def _grade(self) -> None:
        config, limits = self.config, self.limits
        become_subreaper()
        self.private = Path(tempfile.mkdtemp(prefix="course-grading-"))
        self._report()
        folders = {name: self.private / name for name in ("submitted", "work", "home", "lib")}
        for folder in folders.values():
            folder.mkdir()
        try:
            written = f"{config['assignment']}_written_answers.md" if config.get("written_questions") else None
            submission = collect(self.root / "submission", folders["submitted"], config["notebook"],
                                 config["student_files"], limits, written)
        except Rejected as rejected:
            self.results.note(str(rejected))
            self.results.fail_missing(f"❌ Not graded: {rejected}")
            return
        self.results.graded_files = [submission.notebook.name, *submission.files]
        self.results.for_people = list(submission.for_people)
        if written and not submission.for_people:
            self.results.note(f"`{written}` is not in your submission: your written answers reach the course staff "
                              "only through it (the export cell writes it; save the notebook before exporting).")
        for name in config["student_files"]:
            if name not in submission.files:
                self.results.note(f"`{name}` is missing from your submission: run the export cell and submit the zip "
                                  "it makes (it holds your notebook and this file).")
        for note in submission.notes:
            self.results.note(note)
        self.user = users.choose()
        self._report()
        self._close_the_autograder()
        try:
            if submission.unreadable:
                raise Rejected(submission.unreadable)
            cells = read_cells(submission.notebook, config["assignment"], limits, self.user)
        except Rejected as rejected:
            self.results.note(str(rejected))
            self.results.fail_missing(f"❌ Not graded: {rejected}", needs_notebook=True)
            cells = None
        self._prepare(folders, submission)
        self.memory = self._watch()
        if cells is not None:
            self._start(folders, with_notebook=True)
            self._run_cells(cells)
            self._notebook_tests(cells)
        self._end_the_notebook()
        self._file_tests(folders)
        if self.tests is not None:
            _send(self.tests, {"op": "exit"})
        log(f"graded in {time.monotonic() - self.started:.1f} s; the process tree peaked at "
            f"{self.memory.peak / 2**20:.0f} MB")
        self._report()

    def _report(self) -> None:
        """results/supervisor.json, for whoever runs the grader: who ran the notebook, what the tree peaked at."""
        report = {"kernel_uid": self.user.uid if self.user else None, "seconds": round(time.monotonic() - self.started, 1),
                  "peak_mb": round(self.memory.peak / 2**20) if self.memory else None, "stopped": self.stopped,
                  "private": str(self.private) if self.private else None,
                  "container_peak_mb": round(self.memory.container_peak / 2**20) if self.memory and
                  self.memory.container else None, "mechanisms": self.mechanisms,
                  "notebook_cgroup": str(self.notebook_group.path) if self.notebook_group else None}
        write_atomically(self.root / "results" / "supervisor.json", json.dumps(report))

    # ---- folders and processes ----
    def _close_the_autograder(self) -> None:
        """The tests, the rest of the autograder and the results are the grader's alone (the notebook's copy of the
        course library is in the private folder)."""
        if self.user is not None:
            for path in (self.source / "tests", self.source, self.root / "results"):
                if path.is_dir() and not path.is_symlink():
                    os.chmod(path, 0o700)

    def _watch(self) -> TreeMemory:
        """The memory watch, and the mechanisms that hold the notebook here, logged: the OOM killer's order (set while
        root), the container's own memory cgroup (read), the notebook's child cgroup (made in `_start`)."""
        self.mechanisms["supervisor_oom_score_adj"] = users.set_oom_score_adj(SUPERVISOR_OOM_SCORE_ADJ)
        container = cgroups.own("memory")
        watch = TreeMemory(os.getpid(), self.limits.tree_memory_mb, self.user.uid if self.user else None,
                           container=container)
        if self.user is not None:
            watch.oom_score_adj = users.NOTEBOOK_OOM_SCORE_ADJ
        if watch.container is not None:
            self.mechanisms["container_memory"] = (f"the container's cgroup v{container.version} usage, limit "
                                                   f"{container.limit() / 2**20:.0f} MB")
        else:
            self.mechanisms["container_memory"] = ("no limited memory cgroup to read" if container is None else
                                                   f"cgroup v{container.version} without a limit: not the container's")
        log("memory: the process tree (PSS, tmpfs, memfd, System V shared memory); "
            + self.mechanisms["container_memory"])
        return watch

    def _make_notebook_group(self) -> None:
        """A memory cgroup of the notebook's own below the supervisor's, where the kernel allows it (its hard limit is
        set once the notebook's process is ready: `_hold_notebook`)."""
        if self.notebook_group is not None or self.user is None:
            self.mechanisms.setdefault("notebook_cgroup", "none: no user of its own (not root)")
            return
        mine = cgroups.own("memory")
        if mine is None or not mine.writable():
            self.mechanisms["notebook_cgroup"] = ("none: no memory cgroup" if mine is None else
                                                  f"none: cgroup v{mine.version} {mine.path} is not writable")
            return
        try:
            self.notebook_group = mine.child(f"course-notebook-{os.getpid()}")
        except OSError as error:
            self.mechanisms["notebook_cgroup"] = f"none: {type(error).__name__}: {error}"

    def _hold_notebook(self, pid: int) -> None:
        """The notebook's process (ready, nothing of the submission run yet) into its cgroup, with a hard limit: what
        `tree_memory_mb` leaves beside everything grading holds now. What it and its children allocate beyond that,
        of any kind, the kernel refuses (its OOM killer, in that cgroup only)."""
        if self.notebook_group is None:
            return
        try:
            room = int(self.limits.tree_memory_mb * 2**20 - self.memory.sample())
            room = max(room, (self.limits.kernel_memory_mb + 64) * 2**20)
            self.notebook_group.set_memory_limit(room)
            self.notebook_group.add(pid)
            self.memory.set_notebook_group(self.notebook_group)
            self.mechanisms["notebook_cgroup"] = (f"cgroup v{self.notebook_group.version}, hard limit "
                                                  f"{room / 2**20:.0f} MB")
        except OSError as error:
            self.mechanisms["notebook_cgroup"] = f"none: {type(error).__name__}: {error}"
        log(f"the notebook's memory cgroup: {self.mechanisms['notebook_cgroup']}")

    def _remove_notebook_group(self) -> None:
        if self.notebook_group is not None and not self.notebook_group.processes():
            if self.notebook_group.remove():
                self.notebook_group = None

    def _prepare(self, folders: dict[str, Path], submission) -> None:
        """The private folder: `submitted` (the graded files, and the grading data, for the tests only), `work` (the
        notebook's working folder: its own copies of the submitted files), `home`, `lib` (the course library)."""
        shutil.copytree(self.source / "course", folders["lib"] / "course", ignore=shutil.ignore_patterns("__pycache__"))
        if (self.source / "grading_data").is_dir():
            os.symlink(self.source / "grading_data", folders["submitted"] / "grading_data")
        for name in [submission.notebook.name, *submission.files]:
            shutil.copyfile(folders["submitted"] / name, folders["work"] / name)
        os.chmod(folders["submitted"], 0o700)
        os.chmod(self.private, 0o711)  # the notebook's user passes through to its folders, and lists nothing
        for path in [folders["lib"], *folders["lib"].rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if self.user is not None:
            for folder in (folders["work"], folders["home"]):
                for path in [folder, *folder.iterdir()]:
                    os.chown(path, self.user.uid, self.user.gid)
                os.chmod(folder, 0o700)
            import sysconfig

            needed = [sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib"), *_package_folders(),
                      str(folders["lib"]), str(folders["work"]), sys.executable]
            allowed = self.root == GRADESCOPE_ROOT or os.environ.get(GRANT_ACCESS_ENV) == "1"
            blocked = users.open_the_way(self.user, needed, allowed)
            if blocked:
                log(f"{self.user.name} cannot read {blocked[0]} (set {GRANT_ACCESS_ENV}=1 to let the grader open the "
                    "folders on its way): the notebook runs as the grader's own user")
                self.user.release()
                self.user = None
        log(f"the notebook runs as {self.user.name if self.user else 'the grader' + chr(39) + 's own user'}")

    def _start(self, folders: dict[str, Path], with_notebook: bool) -> None:
        """The zygote: the test process, and (with_notebook) the notebook's process forked from it; both ready.

        Its settings come on its standard input, not its command line (which any process can read): first what the
        fork needs, then, read by the test process only after the fork, the tests' folder and the questions."""
        tests_here, tests_there = socket.socketpair()
        kernel_here, kernel_there = socket.socketpair()
        output_read, output_write = os.pipe()
        if with_notebook:
            self._make_notebook_group()
        settings = {"tests_fd": tests_there.fileno(), "kernel_fd": kernel_there.fileno(), "output_fd": output_write,
                    "folders": {k: str(v) for k, v in folders.items()}, "limits": self.limits.as_config(),
                    "user": None if self.user is None else {"uid": self.user.uid, "gid": self.user.gid,
                                                            "name": self.user.name},
                    "notebook": with_notebook}
        grading = {"tests": str(self.source / "tests"), "questions": self.config["questions"]}
        threads = str(self.limits.threads)
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "COURSE_GRADING": "1",
                       "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
                       "MPLBACKEND": "Agg", "HOME": str(folders["home"]), "PYTHONDONTWRITEBYTECODE": "1"}
        if "COURSE_DATA_DIR" in os.environ:  # the course library finds the data mirror (the repository's tests)
            environment["COURSE_DATA_DIR"] = os.environ["COURSE_DATA_DIR"]
        boot = f"import sys; sys.path.insert(0, {str(self.source)!r}); from sandbox.zygote import main; main()"
        self.zygote = subprocess.Popen([sys.executable, "-I", "-c", boot],
                                       pass_fds=(tests_there.fileno(), kernel_there.fileno(), output_write),
                                       cwd=self.private, env=environment, stdin=subprocess.PIPE)
        for end in (tests_there, kernel_there):
            end.close()
        os.close(output_write)
        from .zygote import frame

        stdin = self.zygote.stdin
        threading.Thread(target=_write_and_close, args=(stdin, frame(settings) + frame(grading)), daemon=True,
                         name="zygote settings").start()
        self.output.drain(output_read)
        self.tests = wire.Connection(tests_here, max_bytes=1 << 20)
        self.kernel = wire.Connection(kernel_here, max_bytes=64 << 10) if with_notebook else None
        if not with_notebook:
            kernel_here.close()
        deadline = min(time.monotonic() + READY_TIMEOUT_S, self.deadline - 30)
        ready = self._receive(self.tests, deadline)
        if ready is None or ready.get("op") != "ready":
            raise RuntimeError("the test process did not start")
        if ready.get("problem"):
            raise RuntimeError(str(ready["problem"]))
        if with_notebook:
            try:
                ready = self._receive(self.kernel, deadline)
            except NotebookStopped:
                ready = None
            if ready is None or ready.get("op") != "ready" or type(ready.get("pid")) is not int:
                self._stop_notebook("the notebook's process did not start")
            else:
                self.kernel_pid = ready["pid"]
                enforced = ready.get("enforced") if isinstance(ready.get("enforced"), dict) else {}
                self.mechanisms.update({f"notebook_{key}": str(value)[:200] for key, value in enforced.items()})
                log(f"the notebook's process: network {self.mechanisms.get('notebook_network')}, oom_score_adj "
                    f"{self.mechanisms.get('notebook_oom_score_adj')}")
                self._hold_notebook(self.kernel_pid)

    # ---- waiting, watching ----
    def _receive(self, connection: wire.Connection, deadline: float) -> dict | None:
        """The next message on `connection`, or None once `deadline` passes, while watching the memory of the tree.
        NotebookStopped when the notebook's process is gone (or the watch killed it) and `connection` is its own."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                slice_s = self.memory.every_s() if self.memory is not None else 0.05
                message, _ = connection.receive(deadline=time.monotonic() + min(left, slice_s))
                return message
            except socket.timeout:
                pass
            except (EOFError, OSError, wire.ProtocolError) as error:
                if connection is self.kernel:
                    if self.memory is not None and self.memory.killed_by_kernel() and not self.ended:
                        self._stop_notebook(self._over_memory_message())
                    self._stop_notebook(self.stopped or (
                        f"your notebook's process ended {self.activity} (os._exit, a crash in native code such as a "
                        "segmentation fault, or running out of memory end it)" if isinstance(error, EOFError) else
                        f"your notebook's process broke the grader's protocol {self.activity} ({_ending(error)})"))
                    raise NotebookStopped(self.stopped) from None
                raise
            if self.memory is not None and self.memory.over() and self.stopped is None and not self.ended:
                self._stop_notebook(self._over_memory_message())
                raise NotebookStopped(self.stopped)

    def _over_memory_message(self) -> str:
        return (f"your notebook's processes used more memory than the grader allows {self.activity} "
                f"({self.limits.tree_memory_mb} MB for everything grading runs)")

    def _stop_notebook(self, reason: str) -> None:
        """Kill every process of the notebook's; `reason` is what the tests that needed it will say."""
        if self.stopped is None:
            self.stopped = reason
            log(f"notebook stopped: {reason}")
        if self.user is not None:
            users.kill_all(self.user)
        elif self.kernel_pid is not None:
            kill_tree(self.kernel_pid)
            try:
                os.kill(self.kernel_pid, 9)
            except ProcessLookupError:
                pass
        if self.kernel is not None:
            self.kernel.sock.close()
            self.kernel = None

    # ---- the cells ----
    def _run_cells(self, cells) -> None:
        limits, used, problems = self.limits, 0.0, []
        not_run: list[str] = []
        after_cells = limits.after_cells_s()
        for cell in cells:
            name = f"cell {cell.number} ({cell.label})"
            if self.kernel is None:
                not_run.append(name)
                continue
            budget = min(limits.notebook_timeout_s - used, self.deadline - after_cells - time.monotonic())
            if budget <= 0:
                why = (f"the notebook's cells used up the {limits.notebook_timeout_s:g} s the grader allows for all of "
                       "them" if used >= limits.notebook_timeout_s else "grading time ran out")
                not_run.append(f"{name} was not run: {why}")
                continue
            seconds = min(limits.cell_timeout_s, budget)
            too_long = (f"ran longer than {seconds:g} s and was stopped by the grader" if seconds == limits.cell_timeout_s
                        else f"was stopped by the grader when the notebook's cells reached the "
                             f"{limits.notebook_timeout_s:g} s allowed for all of them")
            started, self.activity = time.monotonic(), f"while {name} ran"
            try:
                _send(self.kernel, {"op": "run", "cell": cell.number, "source": cell.source})
                done = self._receive(self.kernel, started + seconds)
                interrupted = done is None
                if not interrupted and (done.get("op") != "done" or done.get("cell") != cell.number):
                    self._stop_notebook("your notebook's process broke the grader's protocol")
                    raise NotebookStopped(self.stopped)
                if interrupted:
                    os.kill(self.kernel_pid, 2)  # SIGINT: a KeyboardInterrupt in the cell
                    done = self._receive(self.kernel, time.monotonic() + limits.interrupt_grace_s)
                    if done is None or done.get("op") != "done":
                        self._stop_notebook(f"{name} {too_long.replace(' and was stopped by the grader', '')} and did "
                                            "not stop when interrupted: the grader ended your notebook's process")
                        raise NotebookStopped(self.stopped)
            except (NotebookStopped, EOFError, OSError, wire.ProtocolError):
                problems.append(self.stopped[0].upper() + self.stopped[1:])
                continue
            finally:
                used += time.monotonic() - started
            if interrupted and (done.get("error") or {}).get("type") == "KeyboardInterrupt":
                problems.append(f"{name}: CellTimeLimitExceeded: {too_long}")
            elif isinstance(done.get("error"), dict):
                error = done["error"]
                kind, text = str(error.get("type", "Error"))[:100], str(error.get("message", ""))[:300]
                hint = _PERMISSION_HINT if kind == "PermissionError" else ""
                problems.append(f"{name}: {kind}: {text}{hint}")
        if problems or not_run:
            lines = [f"- {problem}" for problem in problems[:20]]
            if len(problems) > 20:
                lines.append(f"- and {len(problems) - 20} more")
            if not_run:
                lines.append(f"- {not_run[0]}" + (f" (and the {len(not_run) - 1} cells after it)" if len(not_run) > 1
                                                   else ""))
            self.results.note("Cells that raised an error or did not run while your notebook was graded:\n" +
                              "\n".join(lines))

    # ---- the tests ----
    def _notebook_tests(self, cells) -> None:
        limits = self.limits
        self.activity = "while the tests called it"
        if self.kernel is not None:
            try:
                self._kill_the_notebooks_other_processes()
                _send(self.kernel, {"op": "serve"})
                serving = self._receive(self.kernel, time.monotonic() + 30)
                if serving is None or serving.get("op") != "serving":
                    self._stop_notebook("your notebook's process never started serving the tests")
            except (NotebookStopped, EOFError, OSError, wire.ProtocolError):
                pass
        if self.kernel is None:
            self.results.fail_missing(f"❌ Not graded: {self.stopped}", needs_notebook=True)
            return
        stopped_before = self.stopped
        # the cells as sent: the test process checks against them where an exception says it was raised
        _send(self.tests, {"op": "notebook_tests", "call_limit_s": limits.call_timeout_s,
                           "total_limit_s": limits.tests_timeout_s, "own_limit_s": limits.tests_own_s,
                           "cells": {str(cell.number): cell.source for cell in cells}})
        deadline = min(time.monotonic() + limits.tests_timeout_s + limits.tests_own_s,
                       self.deadline - limits.file_tests_timeout_s - 10)
        if not self._collect(deadline):
            self._stop_test_process()
            self.results.fail_missing(f"❌ Not graded: the tests of your notebook ran past the "
                                      f"{limits.tests_timeout_s + limits.tests_own_s:g} s the grader allows them",
                                      needs_notebook=True)
        if self.stopped is not None and self.stopped != stopped_before:
            self.results.note(f"While the tests ran, the grader stopped your notebook's process: {self.stopped}.")

    def _file_tests(self, folders: dict[str, Path]) -> None:
        if not any(not case["needs_notebook"] for question in self.config["questions"] for case in question["cases"]):
            return
        if self.tests is None or self.zygote is None or self.zygote.poll() is not None:
            self._stop_test_process()
            self._start(folders, with_notebook=False)
        limits = self.limits
        _send(self.tests, {"op": "file_tests", "folder": str(folders["submitted"])})
        if not self._collect(min(time.monotonic() + limits.file_tests_timeout_s, self.deadline - 5)):
            self._stop_test_process()
            self.results.fail_missing(f"❌ Not graded: the tests of your exported files ran longer than the "
                                      f"{limits.file_tests_timeout_s:g} s the grader allows them", needs_notebook=False)

    def _collect(self, deadline: float) -> bool:
        """Verdicts from the test process until it says done (True), or until `deadline` (False)."""
        while True:
            try:
                message = self._receive(self.tests, deadline)
            except NotebookStopped:
                continue  # the test process notices on its own: the tests that still needed the notebook fail
            except (EOFError, OSError, wire.ProtocolError) as error:
                log(f"the test process failed: {_ending(error)}")
                self._stop_test_process()
                return False
            if message is None:
                return False
            op = message.get("op")
            if op == "verdict":
                self.results.verdict(str(message.get("question")), str(message.get("case")),
                                     message.get("passed") is True, str(message.get("message", ""))[:4000])
            elif op == "leaderboard":
                self.results.post(str(message.get("name")), message.get("value"))
            elif op == "log":
                log(str(message.get("text"))[:2000])
            elif op == "done":
                return True

    def _stop_test_process(self) -> None:
        if self.tests is not None:
            self.tests.sock.close()
            self.tests = None
        if self.zygote is not None:
            self.zygote.kill()
            self.zygote.wait()
            self.zygote = None

    def _kill_the_notebooks_other_processes(self) -> None:
        """Before the tests: every process the notebook started is killed (its process serves alone)."""
        from .limits import processes_of_user

        if self.user is None:
            kill_tree(self.kernel_pid)
            return
        for _ in range(100):
            others = processes_of_user(self.user.uid) - {self.kernel_pid}
            if not others:
                return
            for sig in (19, 9):  # SIGSTOP, then SIGKILL: none starts more meanwhile
                for pid in others:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            time.sleep(0.01)

    def _end_the_notebook(self) -> None:
        self.ended = True
        if self.kernel is not None:
            self.kernel.sock.close()
            self.kernel = None
        if self.user is not None:
            users.kill_all(self.user)
            users.remove_all(self.user)
        elif self.kernel_pid is not None:
            kill_tree(os.getpid(), keep={self.zygote.pid} if self.zygote else set())
        reap(keep={self.zygote.pid} if self.zygote else set())
        self._remove_notebook_group()

    def _cleanup(self) -> None:
        """Nothing started for grading outlives it, and its private folder is gone."""
        try:
            if self.user is not None:
                users.kill_all(self.user)
            self._stop_test_process()
            kill_tree(os.getpid())
            reap()
            if self.user is not None:
                users.remove_all(self.user)
                self.user.release()
            self._remove_notebook_group()
            if self.private is not None:
                subprocess.run(["rm", "-rf", "--one-file-system", "--", str(self.private)], check=False)
            self.output.write_to_log()
        except Exception:  # noqa: BLE001 - cleaning up must not keep results.json from being written
            log(f"cleaning up failed:\n{traceback.format_exc()}")


_PERMISSION_HINT = " (while it is graded, a notebook may create files but not change the submitted ones or the grader's)"


def _write_and_close(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except OSError:  # the zygote ended first: _start says so
        pass


def _send(connection: wire.Connection | None, message: dict) -> None:
    if connection is not None:
        try:
            connection.send(message, [])
        except OSError:
            pass


def _ending(error: BaseException) -> str:
    return "it closed its connection" if isinstance(error, EOFError) else f"{type(error).__name__}: {error}"


def _package_folders() -> list[str]:
    import importlib.util

    folders = []
    for package in ("torch", "numpy", "IPython", "matplotlib", "safetensors"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            folders.append(os.path.dirname(spec.origin))
    return folders


def log(message: str) -> None:
    """A line for whoever runs the grader (Gradescope's autograder output, `make grade`'s grading.log)."""
    print(f"[course grader {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class _Output:
    """What the notebook's process prints: the first and last `keep` bytes go to the grading log, the rest is read
    and dropped (a notebook that prints without end fills no memory and blocks nothing)."""

    def __init__(self, keep: int):
        self.keep, self.head, self.tail, self.dropped = keep, bytearray(), bytearray(), 0
        self._thread = None

    def drain(self, fd: int) -> None:
        def read():
            with os.fdopen(fd, "rb", buffering=0) as pipe:
                half = self.keep // 2
                while chunk := pipe.read(1 << 16):
                    if len(self.head) < half:
                        take = half - len(self.head)
                        self.head += chunk[:take]
                        chunk = chunk[take:]
                    self.tail += chunk
                    if len(self.tail) > half:
                        self.dropped += len(self.tail) - half
                        del self.tail[:len(self.tail) - half]
        self._thread = threading.Thread(target=read, name="notebook output", daemon=True)
        self._thread.start()

    def write_to_log(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=2)
        text = self.head.decode(errors="replace")
        if self.dropped:
            text += f"\n[... {self.dropped:,} bytes of output left out ...]\n"
        text += self.tail.decode(errors="replace")
        if text.strip():
            log("what the notebook printed:\n" + text.rstrip())
