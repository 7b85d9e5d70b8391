"""An otter plugin that guards each graded notebook before its kernel starts.

Enabled in every autograder zip by autograder/build.py (otter_config.json -> plugins):
- the notebook must belong to this assignment (otter's `assignment_name` metadata), else grading
  stops with a message saying which assignment it is for;
- every code cell gets a time limit: a cell that runs too long is interrupted with an error that
  names the cell, and the remaining cells and questions are still graded;
- the kernel gets a memory cap, so a cell that allocates without bound fails with MemoryError
  instead of killing the kernel;
- training is switched off (COURSE_GRADING=1), whatever tags the student removed;
- the grader process adopts orphaned processes (so the kernel guard can find and stop what the notebook
  detaches), reads the kernel's results with an unpickler limited to otter's classes, and its log server
  accepts plain data only, so nothing the notebook writes or sends makes the grader process run code;
- course.grading_guard.KernelGuard protects the tests inside the kernel (see that module): it is created
  before the first student cell under a name that is new for every grading, and `before_tests` runs after
  the last one;
- after grading: hidden tests' failure messages keep only the exception, cells that raised are listed,
  and every test fails (with the reason) if the guard could not vouch for the state the tests ran in.
Limits: see course.grading_guard and the README.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import secrets

import nbformat
from otter.plugins import AbstractOtterPlugin

GUARD_SOURCE = '''\
import os as _os, resource as _resource
_os.environ["COURSE_GRADING"] = "1"
# one compute thread: Gradescope gives 0.5 vCPU but shows the host's cores, and one torch thread per core
# would only add memory and contention; set before torch is imported so OpenMP reads it
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    _os.environ[_name] = "{threads}"
_os.environ["MPLBACKEND"] = "Agg"  # plots are not graded; the non-interactive backend is the lightest

def _cap_memory(extra_mb):
    with open("/proc/self/status") as status:
        vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
    limit = (vm_kb // 1024 + extra_mb) * 2**20
    _resource.setrlimit(_resource.RLIMIT_DATA, (limit, limit))

try:
    import torch as _torch, numpy as _np  # map the libraries before the cap, so the cap is about data
    _torch.zeros(1) + 1
    _torch.set_num_threads({threads})
    _cap_memory({extra_mb})
except (OSError, ValueError, StopIteration):
    pass

try:  # no progress-bar monitor thread: the guard stops every thread the notebook starts
    import tqdm as _tqdm
    _tqdm.tqdm.monitor_interval = 0
except ImportError:
    pass

from course.grading_guard import KernelGuard as _KernelGuard
{state} = _KernelGuard(grader_pid={grader_pid}, cell_limit_s={cell_timeout_s:g}, notebook_limit_s={notebook_timeout_s:g},
                        call_limit_s={call_timeout_s:g}, tests_limit_s={tests_timeout_s:g})
del _KernelGuard
'''


# time limits (config key: default seconds); the environment variable COURSE_<KEY> overrides the zip's value
# (the repository's tests use that)
# per cell; all cells (so the tests still run within Gradescope's 10 minutes); per call from a test into student
# code; all those calls together
TIME_LIMITS = {"cell_timeout_s": 120, "notebook_timeout_s": 420, "call_timeout_s": 60, "tests_timeout_s": 180}


class CourseGradingPlugin(AbstractOtterPlugin):
    """Config keys: assignment (name), the TIME_LIMITS, memory_mb (kernel data budget), threads (torch threads)."""

    TRUSTED = ("course", "grading_data")  # support folders the autograder ships in source/files

    def before_grading(self, ag_config):
        """Replace any `course/` or `grading_data/` a submission brought with the autograder's own copies.

        otter copies support files into the submission folder only when absent, so without this a
        zip holding its own `course/grading.py` would grade itself. The working directory is the
        submission folder; the autograder's files are in ../source/files.
        """
        import shutil
        from pathlib import Path

        for name in self.TRUSTED:
            trusted = Path("..") / "source" / "files" / name
            if trusted.is_dir():
                shutil.rmtree(name, ignore_errors=True)
                if Path(name).exists():  # a file, not a folder
                    Path(name).unlink()
                shutil.copytree(trusted, name)

    def before_execution(self, submission):
        if not isinstance(submission, nbformat.NotebookNode):
            return submission
        expected = self.plugin_config.get("assignment")
        found = submission.metadata.get("otter", {}).get("assignment_name")
        if expected and found and found != expected:
            raise ValueError(f"This notebook is for assignment '{found}', not '{expected}': submit the {expected} notebook.")
        _become_subreaper()
        _load_results_safely()
        _receive_plain_logs()
        limits = {key: float(os.environ.get(f"COURSE_{key.upper()}", self.plugin_config.get(key, default)))
                  for key, default in TIME_LIMITS.items()}
        # a new name each time, so a notebook cannot be written to replace the guard by its name
        state = f"{STATE_PREFIX}{secrets.token_hex(8)}__"
        cells = [nbformat.v4.new_code_cell(GUARD_SOURCE.format(
            state=state, grader_pid=os.getpid(), extra_mb=int(self.plugin_config.get("memory_mb", 2048)),
            threads=int(self.plugin_config.get("threads", 1)), **limits))]
        for number, cell in enumerate(submission.cells, 1):
            if cell.cell_type == "code":
                first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")[:40]
                # one line, so the student's line numbers in tracebacks move by one only
                cell.source = f"{state}.start_cell({number}, {first!r})\n" + cell.source
            cells.append(cell)
        cells.append(nbformat.v4.new_code_cell(f"{state}.before_tests(globals())"))
        submission.cells = cells
        return submission

    def after_grading(self, results):
        """Hide hidden tests' code in their failure messages; report cells that raised while grading; fail every
        test if the guard could not vouch for the state the tests ran in; end processes the notebook left."""
        from course.grading_guard import GUARD_MARK, stop_new_processes

        stop_new_processes(os.getpid(), known=set())  # the kernel has ended: anything below the grader is the notebook's
        for test_file in getattr(results, "results", {}).values():
            for result in getattr(test_file, "test_case_results", []):
                if result.test_case.hidden and not result.passed:
                    # otter quotes the failing line of the test; keep only the exception, which says what failed
                    last = result.message.strip().splitlines()[-1] if result.message.strip() else ""
                    result.message = "❌ Hidden test failed\n" + last
        notebook = getattr(results, "notebook", None)
        if notebook is None:
            return
        problems = []
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            first_line = cell.source.split("\n", 1)[0]
            if FINAL_CELL.fullmatch(cell.source.strip()):
                self._zero_if_unguarded(results, cell)
            for text in (str(output.get("text", "")) for output in cell.get("outputs", [])):
                if GUARD_MARK in text:  # the guard found the notebook's code running beside the tests
                    self._zero_all(results, text.split(GUARD_MARK, 1)[1].strip().splitlines()[0])
                    break
            where = CELL_START.match(first_line)
            if not where:
                continue
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    problems.append(f"- cell {where.group(1)}: {output.get('ename')}: {str(output.get('evalue'))[:300]}")
        if problems:
            results.set_output("Cells that raised an error while your notebook was graded:\n" + "\n".join(problems[:20]))

    @classmethod
    def _zero_if_unguarded(cls, results, final_cell):
        """If the guard's last cell failed (a background thread or process survived, or its repairs raised), the tests
        ran on a state the grader could not vouch for: every test is failed, with the reason."""
        errors = [o for o in final_cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            cls._zero_all(results, f"{errors[0].get('ename')}: {str(errors[0].get('evalue'))[:300]}")

    @staticmethod
    def _zero_all(results, reason):
        for test_file in getattr(results, "results", {}).values():
            for result in getattr(test_file, "test_case_results", []):
                result.passed = False
                result.message = "❌ Not graded: " + reason


STATE_PREFIX = "__course_guard_"
CELL_START = re.compile(rf"{STATE_PREFIX}[0-9a-f]+__\.start_cell\((\d+, .*)\)")
FINAL_CELL = re.compile(rf"{STATE_PREFIX}[0-9a-f]+__\.before_tests\(globals\(\)\)")


def _become_subreaper():
    """Make this process (the grader) adopt orphans: a process the notebook detaches still ends up below it,
    where the guard finds and stops it."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):  # not Linux
        pass


# what a results file written by otter's last cell may name, besides classes defined in otter: plain containers
_RESULT_GLOBALS = {("copyreg", "_reconstructor"), ("builtins", "object"), ("builtins", "set"), ("builtins", "frozenset"),
                   ("collections", "OrderedDict"), ("collections", "defaultdict")}


def _load_results_safely():
    """otter reads the kernel's results with pickle.load, which runs whatever code the file names. Student code can
    write that file, so the grader reads it with an unpickler that only builds otter's result classes."""
    import types

    import otter.execute

    class ResultsUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in _RESULT_GLOBALS:
                return super().find_class(module, name)
            if module.split(".")[0] == "otter" and "." not in name:  # a dotted name could reach otter's imports (os...)
                found = super().find_class(module, name)
                if isinstance(found, type) and found.__module__.split(".")[0] == "otter":
                    return found
            raise pickle.UnpicklingError(f"the results file names {module}.{name}, which otter's results never hold")

    otter.execute.pickle = types.SimpleNamespace(load=lambda file: ResultsUnpickler(file).load())


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"a log record may hold plain data only, not {module}.{name}")


def _receive_plain_logs():
    """otter's log server (in this process, on a localhost port) unpickles whatever is sent to it; the kernel's
    log records are plain dictionaries, so the server now accepts nothing else: code in the notebook that
    connects to the port cannot make the grader run anything."""
    import otter.execute.logging

    otter.execute.logging.LogRecordStreamHandler.unpickle = lambda self, data: _PlainDataUnpickler(io.BytesIO(data)).load()
