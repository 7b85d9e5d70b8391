"""An otter plugin that guards each graded notebook before its kernel starts.

Enabled in every autograder zip by autograder/build.py (otter_config.json -> plugins):
- the notebook must belong to this assignment (otter's `assignment_name` metadata), else grading
  stops with a message saying which assignment it is for;
- every code cell gets a time limit: a cell that runs too long is interrupted with an error that
  names the cell, and the remaining cells and questions are still graded;
- the kernel gets a memory cap, so a cell that allocates without bound fails with MemoryError
  instead of killing the kernel;
- training is switched off (COURSE_GRADING=1), whatever tags the student removed;
- after the last student cell, threads the notebook started are stopped, functions of torch, numpy,
  math, builtins, threading, course.grading and otter that student code replaced are put back, what the
  notebook's functions and modules return to a test becomes plain data (course.grading.plain_value),
  the autograder's test files are restored, and otter's cached results are cleared, so every question
  is scored by one final run of its tests.
Limits: this is the same process as the student's code; code written against this guard's own source
(rebinding its names, ctypes patches, a child process) can still reach the tests; see the README.
"""
from __future__ import annotations

import os

import nbformat
from otter.plugins import AbstractOtterPlugin

GUARD_NAME = "__course_cell_guard__"
FINAL_NAME = "__course_before_final_check__"

GUARD_SOURCE = '''\
import os as _os, resource as _resource, signal as _signal
_os.environ["COURSE_GRADING"] = "1"
# one compute thread: Gradescope gives 0.5 vCPU but shows the host's cores, and one torch thread per core
# would only add memory and contention; set before torch is imported so OpenMP reads it
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    _os.environ[_name] = "{threads}"
_os.environ["MPLBACKEND"] = "Agg"  # plots are not graded; the non-interactive backend is the lightest

def _libc_malloc_trim():
    try:
        import ctypes
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return lambda pad: None

# after each cell: return freed heap pages to the system (glibc keeps them otherwise), so one cell's peak does not stay
_release_free_memory = _libc_malloc_trim()

class CellTimeLimitExceeded(Exception):
    """A cell ran longer than the grader allows."""

class BackgroundThreadsRunning(Exception):
    """Threads the notebook started could not be stopped before the tests ran."""

def {guard}(cell=None, label="", seconds={seconds}):
    import sys as _sys
    # drop the last traceback IPython keeps, so memory held by a failed cell's frames can be freed
    if getattr(_sys, "last_traceback", None) is not None:
        _sys.last_type = _sys.last_value = _sys.last_traceback = None
        try:  # IPython keeps the failed cell's exception (and so its frames) in two more places
            get_ipython().InteractiveTB.tb = None
            get_ipython().last_execution_result.error_in_exec = None
        except (NameError, AttributeError):
            pass
        import gc as _gc
        _gc.collect()
    _release_free_memory(0)
    def _stop(signum, frame):
        raise CellTimeLimitExceeded(f"cell {{cell}} ({{label}}) ran longer than {{seconds}} s and was stopped by the grader")
    _signal.signal(_signal.SIGALRM, _stop)
    _signal.setitimer(_signal.ITIMER_REAL, seconds if cell is not None else 0)

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

def _course_snapshot():
    """What tests rely on, as it is before any student code runs."""
    import builtins, math, sys, threading, torch, torch.nn.functional, numpy, otter.execute, otter.test_files
    import otter.test_files.exception_test, course.grading
    owners = [builtins, math, threading, torch, torch.nn.functional, torch.testing, numpy, numpy.testing, torch.Tensor,
              torch._C.TensorBase, torch.nn.Module, torch.nn.modules.module, course.grading,
              otter.execute.Checker, otter.test_files.GradingResults, otter.test_files.exception_test.ExceptionTestFile,
              otter.test_files.exception_test.test_case]
    modules = {{owner.__name__: owner for owner in owners if isinstance(owner, type(sys))}}
    modules.update((name, sys.modules[name]) for name in ("course", "otter", "otter.execute", "otter.test_files",
                                                          "otter.test_files.exception_test"))
    return [(owner, dict(vars(owner))) for owner in owners], modules, set(sys._current_frames())

try:  # no progress-bar monitor thread: the final check stops every thread the notebook started
    import tqdm as _tqdm
    _tqdm.tqdm.monitor_interval = 0
except ImportError:
    pass

_course_saved, _course_modules, _course_threads = _course_snapshot()

def {final}():
    """Run after the last student cell, just before otter's final check cell: undo what student code
    may have replaced, restore the autograder's own test files, and make otter re-run every question."""
    import shutil, sys, threading
    sys.settrace(None); sys.setprofile(None); threading.settrace(None); threading.setprofile(None)
    sys.modules.update(_course_modules)
    from course.grading import stop_new_threads, check_results_for_tests
    running = stop_new_threads(_course_threads)  # first, so no thread can undo what follows
    for owner, saved in _course_saved:
        if isinstance(owner, type):  # a method added to a class shadows the inherited one: remove it
            for name in [n for n in vars(owner) if n not in saved]:
                try:
                    delattr(owner, name)
                except (AttributeError, TypeError):
                    pass
        for name, value in saved.items():
            if vars(owner).get(name, None) is not value:
                try:
                    setattr(owner, name, value)
                except (AttributeError, TypeError):
                    pass
    if _os.path.isdir("../source/tests"):
        shutil.rmtree("tests", ignore_errors=True)
        shutil.copytree("../source/tests", "tests")
    import torch
    torch._C.DisableTorchFunctionSubclass().__enter__()  # for the rest of grading: no tensor subclass overrides an op
    check_results_for_tests(globals())
    from otter.execute import Checker
    Checker._test_files = []
    Checker._track_results = True
    {guard}(None)
    if running:
        raise BackgroundThreadsRunning(f"{{len(running)}} thread(s) started by the notebook kept running after the grader tried "
                                       "to stop them; a submission may not run code in the background while it is graded")
'''


class CourseGradingPlugin(AbstractOtterPlugin):
    """Config keys: assignment (name), cell_timeout_s, memory_mb (kernel data budget), threads (torch threads)."""

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
        # COURSE_CELL_TIMEOUT_S overrides the zip's setting (used by the repository's tests)
        seconds = int(os.environ.get("COURSE_CELL_TIMEOUT_S", self.plugin_config.get("cell_timeout_s", 120)))
        extra_mb = int(self.plugin_config.get("memory_mb", 2048))
        threads = int(self.plugin_config.get("threads", 1))
        cells = [nbformat.v4.new_code_cell(GUARD_SOURCE.format(guard=GUARD_NAME, final=FINAL_NAME, seconds=seconds,
                                                               extra_mb=extra_mb, threads=threads))]
        for number, cell in enumerate(submission.cells, 1):
            if cell.cell_type == "code":
                first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")[:40]
                # one line, so the student's line numbers in tracebacks move by one only
                cell.source = f"{GUARD_NAME}({number}, {first!r})\n" + cell.source
            cells.append(cell)
        cells.append(nbformat.v4.new_code_cell(f"{FINAL_NAME}()"))
        submission.cells = cells
        return submission

    def after_grading(self, results):
        """Hide hidden tests' code in their failure messages; report cells that raised while grading."""
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
            if cell.cell_type == "code" and cell.source.strip() == f"{FINAL_NAME}()":
                self._zero_if_unguarded(results, cell)
            if cell.cell_type != "code" or not cell.source.startswith(GUARD_NAME + "("):
                continue
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    where = cell.source.split("\n", 1)[0][len(GUARD_NAME) + 1:-1]
                    problems.append(f"- cell {where}: {output.get('ename')}: {str(output.get('evalue'))[:300]}")
        if problems:
            results.set_output("Cells that raised an error while your notebook was graded:\n" + "\n".join(problems[:20]))

    @staticmethod
    def _zero_if_unguarded(results, final_cell):
        """If the guard's last cell failed (a background thread survived, or its repairs raised), the tests ran
        on a state the grader could not vouch for: every test is failed, with the reason."""
        errors = [o for o in final_cell.get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            return
        reason = f"{errors[0].get('ename')}: {str(errors[0].get('evalue'))[:300]}"
        for test_file in getattr(results, "results", {}).values():
            for result in getattr(test_file, "test_case_results", []):
                result.passed = False
                result.message = "❌ Not graded: " + reason
