"""What protects the tests inside the grading kernel (used by course.otter_plugin).

otter runs a notebook's cells and then its tests in one Python process, so student code can change what
the tests rely on: replace torch.allclose, rewrite a test file, start a thread or a process that does so
later, return an object whose == always says yes. The grader's answer:

- `KernelGuard(...)`, created before any student cell runs, records what the tests trust: the namespaces of
  torch, NumPy, the standard modules the tests use, otter and this library (module and class dictionaries,
  and the code, defaults and closures of their Python functions), `sys.modules`, import hooks, signal
  handlers, and the threads and processes that exist;
- `KernelGuard.repair()` puts all of it back, stops threads and kills processes the notebook started,
  and clears hooks through which student code could run later (tracing, atexit, gc callbacks, finalizers);
- `KernelGuard.before_tests(namespace)`, after the last student cell, repairs, then watches every return
  from student code (code whose globals are the notebook's) to code that is not: each such return repairs
  again, so a function that patches torch when the tests call it patches nothing the tests then use. A
  call from the tests into student code has a time limit, and what the notebook's functions and modules
  return to a test becomes plain data (`plain_value`).

When grading runs as root, the guard then gives up root for an unprivileged user (`run_as`), so student code
cannot write the grader's files or reach the grader process; course.otter_plugin prepares that.

Inside the kernel this is still defence within one process: code written against this module (reaching the
guard's own objects through the garbage collector, ctypes, or code compiled with other globals) can still get
around it.
"""
from __future__ import annotations

import ctypes
import os
import sys

# modules whose dictionaries are restored; any submodule of the first group is included with its classes
TRUSTED_PACKAGES = ("otter", "course")
TRUSTED_MODULES = ("builtins", "math", "random", "collections", "functools", "itertools", "operator", "re", "json",
                   "io", "os", "os.path", "time", "copy", "copyreg", "pickle", "threading", "signal", "atexit",
                   "weakref", "gc", "ctypes", "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.linalg",
                   "torch.testing", "torch.nn.modules.module", "torch.autograd", "numpy", "numpy.testing",
                   "numpy.linalg", "numpy.random")
# classes whose dictionaries are restored, besides those defined in TRUSTED_PACKAGES and torch.nn.modules
TRUSTED_CLASSES = ("torch.Tensor", "torch._C.TensorBase", "torch.nn.Parameter", "numpy.ndarray",
                   "collections.Counter", "collections.OrderedDict", "collections.defaultdict")
# sys attributes that decide what runs when (hooks); restored as they were
SYS_HOOKS = ("meta_path", "path_hooks", "path", "unraisablehook", "breakpointhook", "excepthook", "_current_frames",
             "_getframe", "settrace", "setprofile", "addaudithook", "getrecursionlimit", "setrecursionlimit")

GUARD_MARK = "COURSE-GRADING-GUARD:"  # printed when the tests ran in a state the guard could not restore


class CellTimeLimitExceeded(Exception):
    """A cell, or a call from the tests into student code, ran longer than the grader allows."""


class BackgroundThreadsRunning(Exception):
    """Threads the notebook started could not be stopped before the tests ran."""


class BackgroundProcessesRunning(Exception):
    """Processes the notebook started could not be stopped before the tests ran."""


def _resolve(dotted: str):
    """The object named by a dotted path such as 'torch._C.TensorBase'."""
    import importlib

    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            value = getattr(value, name)
        return value
    return importlib.import_module(dotted)


def _trusted_owners():
    """The modules and classes whose dictionaries the guard restores."""
    import importlib

    owners = []
    for name in TRUSTED_MODULES:
        try:
            owners.append(importlib.import_module(name))
        except ImportError:
            pass
    packages = [module for name, module in list(sys.modules.items())  # with the classes they define
                if module is not None and (name.split(".")[0] in TRUSTED_PACKAGES or name.startswith("torch.nn.modules."))]
    classes = [_resolve(name) for name in TRUSTED_CLASSES]
    for module in packages:
        classes += [value for value in list(vars(module).values())
                    if isinstance(value, type) and getattr(value, "__module__", None) == module.__name__]
    seen, unique = set(), []
    for owner in owners + packages + classes:
        if id(owner) not in seen:
            seen.add(id(owner))
            unique.append(owner)
    return unique


def _libc_malloc_trim():
    """glibc's malloc_trim, which returns freed heap pages to the system (glibc keeps them otherwise)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return lambda pad: None


def _function_state(function):
    cells = []
    for cell in function.__closure__ or ():
        try:
            cells.append((cell, cell.cell_contents))
        except ValueError:  # an empty cell
            pass
    return function, function.__code__, function.__defaults__, function.__kwdefaults__, tuple(cells)


def _descendants(root: int) -> set[int]:
    """Process ids below `root` (children, their children, ...), read from /proc."""
    found, frontier = set(), [root]
    if _PROC_LISTS_CHILDREN:
        while frontier:
            pid = frontier.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:  # the process ended meanwhile
                continue
            for task in tasks:
                try:
                    with open(f"/proc/{pid}/task/{task}/children") as children:
                        for child in children.read().split():
                            if int(child) not in found:
                                found.add(int(child))
                                frontier.append(int(child))
                except OSError:  # the thread ended meanwhile
                    pass
    else:  # this kernel has no /proc/PID/task/TID/children: scan every process
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        found, changed = set(), True
        while changed:
            new = {pid for pid, parent in parents.items() if (parent == root or parent in found) and pid not in found}
            changed = bool(new)
            found |= new
    return found


_PROC_LISTS_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def stop_new_processes(root: int, known: set[int], wait_s: float = 2.0) -> tuple[set[int], list[int]]:
    """Kill the processes below `root` that are not in `known`; returns those it killed and those still alive
    after `wait_s`.

    Each is first stopped (SIGSTOP), so that none can start more while the others are killed. The grader
    process makes itself a child subreaper, so processes that detach from the kernel stay below it.
    """
    import signal
    import time

    deadline = time.monotonic() + wait_s
    me, killed = os.getpid(), set()
    while True:
        new = [pid for pid in _descendants(root) if pid not in known and pid != me and not _is_zombie(pid)]
        if not new or time.monotonic() > deadline:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in new:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        killed.update(new)
        time.sleep(0.01)
    for pid in killed:  # reap those that were this process's children; leave other children to their owners
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return killed, new


def stop_new_threads(known: set[int], wait_s: float = 2.0) -> list[int]:
    """Stop the Python threads started since `known` (thread ids) was taken; returns the ids that survive.

    Each new thread gets SystemExit raised in it, repeatedly, until it ends or `wait_s` passes. Left
    running, such a thread could undo the guard's repairs while the tests run.
    """
    import threading
    import time

    deadline = time.monotonic() + wait_s
    while True:
        alive = [ident for ident in sys._current_frames() if ident not in known and ident != threading.get_ident()]
        if not alive or time.monotonic() > deadline:
            return alive
        for ident in alive:
            _SET_ASYNC_EXC(ctypes.c_ulong(ident), ctypes.py_object(SystemExit))
        time.sleep(0.02)


_SET_ASYNC_EXC = ctypes.pythonapi.PyThreadState_SetAsyncExc  # taken at import, before student code could replace it


# types whose comparisons the grader trusts: they come from Python, torch, NumPy or this library
_TRUSTED_TYPE_MODULES = ("builtins", "torch", "numpy", "collections", "course", "enum", "fractions", "decimal", "datetime")


def plain_value(value, _depth: int = 0):
    """`value` as plain data whose comparisons tell the truth, for a test to check.

    A subclass of a tensor, array, str, int, float, list, tuple, dict or set can redefine `==`, `shape` or
    `__torch_function__`; it becomes an object of its base type holding the same data (containers are
    converted element by element). An object of any other class that defines its own `==` is refused with
    a TypeError. Everything else (modules, functions, None, ...) is returned unchanged.
    """
    import numpy as np
    import torch

    kind = type(value)
    if kind in (type(None), bool, int, float, complex, str, bytes, torch.Tensor, np.ndarray, torch.dtype, torch.device,
                torch.Size, range, slice):
        return value
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            return torch.Tensor.as_subclass(value, torch.Tensor)
    if isinstance(value, np.ndarray):
        return np.ndarray.view(value, np.ndarray)
    if isinstance(value, np.generic) and kind.__module__ == "numpy":
        return value
    if _depth > 50:
        raise TypeError("a value nested more than 50 levels deep")
    convert = lambda item: plain_value(item, _depth + 1)  # noqa: E731
    # the base type's own methods read the stored data, whatever the subclass redefined
    for base, rebuild in ((int, int.__int__), (float, float.__float__), (str, str.__str__), (bytes, bytes.__bytes__),
                          (list, lambda v: [convert(x) for x in list.__iter__(v)]),
                          (tuple, lambda v: tuple(convert(x) for x in tuple.__iter__(v))),
                          (dict, lambda v: {convert(k): convert(x) for k, x in dict.items(v)}),
                          (frozenset, lambda v: frozenset(convert(x) for x in frozenset.__iter__(v))),
                          (set, lambda v: {convert(x) for x in set.__iter__(v)})):
        if isinstance(value, base):
            return rebuild(value)
    if kind.__eq__ is not object.__eq__ and kind.__module__.split(".")[0] not in _TRUSTED_TYPE_MODULES:
        raise TypeError(f"a '{kind.__qualname__}' object, which defines its own ==: the grader accepts plain Python, "
                        "NumPy and torch values")
    return value


class KernelGuard:
    """The grading kernel's trusted state, taken before student code runs, and the repairs that restore it."""

    def __init__(self, grader_pid: int | None = None, cell_limit_s: float = 120, notebook_limit_s: float = 420,
                 call_limit_s: float = 60, tests_limit_s: float = 180, tests_dir: str = "tests",
                 trusted_tests_dir: str = "../source/tests", run_as: tuple[int, int, str] | None = None):
        """`trusted_tests_dir` holds the autograder's copy of the tests, read now and kept in memory (each repair
        rewrites `tests_dir` from it). `run_as` (uid, gid, home): when given, the kernel gives up root for that
        user once the trusted state is taken, so student code cannot write the grader's files or reach the
        grader process (see course.otter_plugin)."""
        import atexit
        import gc
        import os
        import shutil
        import signal
        import threading
        import time
        import weakref

        import torch

        self.cell_limit_s, self.call_limit_s, self.tests_limit_s = cell_limit_s, call_limit_s, tests_limit_s
        self._tests_used_s = 0.0  # time spent in calls from the tests into student code
        self.notebook_limit_s = notebook_limit_s
        self._cells_used_s, self._cell_started = 0.0, None
        self._release_free_memory = _libc_malloc_trim()
        self.grader_pid = grader_pid or os.getppid()
        owners = _trusted_owners()
        self._dicts = [(owner, dict(vars(owner)), isinstance(owner, type)) for owner in owners]
        functions = {}
        for _, saved, _ in self._dicts:
            for value in saved.values():
                if type(value) is type(_function_state):
                    functions[id(value)] = value
        self._functions = [_function_state(function) for function in functions.values()]
        owner_ids = {id(owner) for owner in owners}
        self._modules = {name: module for name, module in sys.modules.items() if id(module) in owner_ids}
        self._sys_hooks = {name: (getattr(sys, name), list(getattr(sys, name)) if isinstance(getattr(sys, name), list) else None)
                           for name in SYS_HOOKS}
        self._signals = {}
        for number in signal.valid_signals():
            try:
                self._signals[number] = signal.getsignal(number)
            except (ValueError, OSError):
                pass
        self._threads = set(sys._current_frames())
        self._processes = _descendants(self.grader_pid)
        self._finalizers = set(weakref.finalize._registry)
        self._module_hooks = torch.nn.modules.module
        self._stdout = sys.stdout
        self._namespace = None
        self._tests, self._tests_dir = None, tests_dir
        if os.path.isdir(trusted_tests_dir):  # read before any student cell: the notebook may rewrite that copy too
            self._tests = {}
            for name in sorted(os.listdir(trusted_tests_dir)):
                with open(os.path.join(trusted_tests_dir, name), "rb") as test_file:
                    self._tests[name] = test_file.read()
        self._timed_call, self._strikes, self._call_started, self._call_limit = None, 0, 0.0, ""
        self._forward_hook_id = None  # the guard's own global forward hook, once the tests start
        # the repairs use these, as they are now, whatever student code replaces later
        self._kit = dict(setattr=setattr, delattr=delattr, vars=vars, settrace=sys.settrace, setprofile=sys.setprofile,
                         threading=threading, signal=signal, setitimer=signal.setitimer, atexit_clear=atexit._clear,
                         atexit_register=atexit.register, exit=os._exit, gc_callbacks=gc.callbacks,
                         registry=weakref.finalize._registry, modules=sys.modules, print=print, open=open, os=os,
                         rmtree=shutil.rmtree, monotonic=time.monotonic)
        sys.addaudithook(_refuse_new_audit_hooks)
        self._defer_tests_without_parameters()  # from the start: the notebook's own check cells skip them too
        if run_as is not None:
            _become_user(*run_as)

    # ---- the student's cells ----
    def start_cell(self, number: int | None = None, label: str = "") -> None:
        """Called first in each student cell (None: after the last one): frees what the last cell left, and sets
        the cell's time limit, the smaller of the per-cell limit and what is left of the notebook's."""
        import signal
        import time

        if getattr(sys, "last_traceback", None) is not None:
            # drop the last traceback IPython keeps, so memory held by a failed cell's frames can be freed
            sys.last_type = sys.last_value = sys.last_traceback = None
            try:  # IPython keeps the failed cell's exception (and so its frames) in two more places
                shell = get_ipython()  # noqa: F821 (defined inside IPython)
                shell.InteractiveTB.tb = None
                shell.last_execution_result.error_in_exec = None
            except (NameError, AttributeError):
                pass
            import gc
            gc.collect()
        self._release_free_memory(0)
        now = time.monotonic()
        if self._cell_started is not None:
            self._cells_used_s += now - self._cell_started
        self._cell_started = now if number is not None else None
        signal.setitimer(signal.ITIMER_REAL, 0)
        if number is None:
            return
        left = self.notebook_limit_s - self._cells_used_s
        if left <= 0:
            raise CellTimeLimitExceeded(f"cell {number} ({label}) was not run: the notebook's cells used up the "
                                        f"{self.notebook_limit_s:g} s the grader allows for all of them")
        seconds = min(self.cell_limit_s, left)
        reason = (f"ran longer than {seconds:g} s" if seconds == self.cell_limit_s else
                  f"was stopped when the notebook's cells reached the {self.notebook_limit_s:g} s allowed for all of them")

        def stop(signum, frame):
            raise CellTimeLimitExceeded(f"cell {number} ({label}) {reason} and was stopped by the grader")
        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, seconds)

    # ---- the repairs ----
    def repair(self) -> list[Exception]:
        """Put back what the tests trust; returns what could not be put back (threads, processes that survive)."""
        kit = self._kit
        kit["settrace"](None)
        self._restore()  # first, so that stopping threads and processes uses the real functions
        threads_started = any(ident not in self._threads for ident in sys._current_frames())
        problems = []
        threads = stop_new_threads(self._threads)
        if threads:
            problems.append(BackgroundThreadsRunning(
                f"{len(threads)} thread(s) started by the notebook kept running after the grader tried to stop them"))
        killed, processes = stop_new_processes(self.grader_pid, self._processes)
        if processes:
            problems.append(BackgroundProcessesRunning(
                f"{len(processes)} process(es) started by the notebook could not be stopped"))
        if threads_started or killed:
            self._restore()  # what they changed until they were stopped
        kit["threading"].settrace(None)
        kit["threading"].setprofile(None)
        signal = kit["signal"]
        for number, handler in self._signals.items():
            if number == signal.SIGALRM and self._timed_call is not None:
                handler = self._call_took_too_long  # a call from the tests is being timed
            try:
                if signal.getsignal(number) is not handler:
                    signal.signal(number, handler)
            except (ValueError, OSError, TypeError):
                pass
        kit["setitimer"](signal.ITIMER_VIRTUAL, 0)
        kit["setitimer"](signal.ITIMER_PROF, 0)
        kit["gc_callbacks"].clear()
        for key in [k for k in kit["registry"] if k not in self._finalizers]:
            kit["registry"].pop(key, None)
        # nothing the notebook registered with atexit runs: at shutdown the kernel ends at once, so no student
        # code runs after the tests have written their results
        kit["atexit_clear"]()
        kit["atexit_register"](kit["exit"], 0)
        self._clear_module_hooks()
        if self._tests is not None:
            self._restore_tests()
        if self._namespace is not None:
            kit["setprofile"](self._on_event)
        return problems

    def _set_trusted(self, owner, name: str, value) -> None:
        """Set an attribute of a restored owner, and restore it to this value from now on."""
        setattr(owner, name, value)
        for saved_owner, saved, _ in self._dicts:
            if saved_owner is owner:
                saved[name] = value

    def _restore_tests(self) -> None:
        """Make the tests folder hold exactly the autograder's test files (student code may write files)."""
        kit = self._kit
        os, folder = kit["os"], self._tests_dir
        if not os.path.isdir(folder):
            if os.path.lexists(folder):
                os.remove(folder)
            os.mkdir(folder)

        def remove(path):
            kit["rmtree"](path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)

        for name in os.listdir(folder):
            if name not in self._tests and name != "__pycache__":
                remove(os.path.join(folder, name))
        for name, content in self._tests.items():
            path = os.path.join(folder, name)
            try:
                with kit["open"](path, "rb") as current:
                    if current.read() == content and not os.path.islink(path):
                        continue
            except OSError:
                pass
            if os.path.lexists(path):
                remove(path)
            with kit["open"](path, "wb") as fresh:
                fresh.write(content)

    def _restore(self) -> None:
        kit = self._kit
        kit["modules"].update(self._modules)
        setattr_, delattr_, vars_ = kit["setattr"], kit["delattr"], kit["vars"]
        for name, (value, items) in self._sys_hooks.items():
            if getattr(sys, name, None) is not value:
                setattr_(sys, name, value)
            if items is not None and value != items:
                value[:] = items
        for owner, saved, is_class in self._dicts:
            current = vars_(owner)
            if is_class:  # a method added to a class shadows an inherited one: remove it
                if len(current) != len(saved):
                    for name in [n for n in current if n not in saved]:
                        try:
                            delattr_(owner, name)
                        except (AttributeError, TypeError):
                            pass
            elif "__getattr__" in current and "__getattr__" not in saved:  # a module-level __getattr__ added
                del current["__getattr__"]
            for name, value in saved.items():
                if current.get(name, saved) is not value:
                    try:
                        setattr_(owner, name, value)
                    except (AttributeError, TypeError):
                        pass
        for function, code, defaults, kwdefaults, cells in self._functions:
            if function.__code__ is not code:
                function.__code__ = code
            if function.__defaults__ is not defaults:
                function.__defaults__ = defaults
            if function.__kwdefaults__ is not kwdefaults:
                function.__kwdefaults__ = kwdefaults
            for cell, contents in cells:
                try:
                    if cell.cell_contents is not contents:
                        cell.cell_contents = contents
                except ValueError:
                    cell.cell_contents = contents

    def _clear_module_hooks(self):
        hooks = self._module_hooks
        for registry in (hooks._global_forward_hooks, hooks._global_forward_pre_hooks, hooks._global_backward_hooks,
                         hooks._global_buffer_registration_hooks, hooks._global_module_registration_hooks,
                         hooks._global_parameter_registration_hooks, hooks._global_backward_pre_hooks,
                         hooks._global_forward_hooks_always_called, hooks._global_forward_hooks_with_kwargs):
            for key in [k for k in registry if k != self._forward_hook_id]:
                registry.pop(key, None)  # hooks the notebook registered could rewrite what a test sees

    # ---- the tests ----
    def before_tests(self, namespace: dict) -> None:
        """Called after the last student cell: repair, then guard every call from the tests into student code.

        otter's record of questions checked while the notebook ran is cleared, so every question is scored by one
        final run of its tests, in the repaired state.
        """
        import torch
        from otter.execute import Checker

        self.start_cell(None)
        self._namespace = namespace
        problems = self.repair()
        self._set_trusted(Checker, "_test_files", [])
        self._set_trusted(Checker, "_track_results", True)
        torch._C.DisableTorchFunctionSubclass().__enter__()  # for the rest of grading: no tensor subclass overrides an op
        self._check_results(namespace)
        if problems:
            raise type(problems[0])(f"{problems[0]}; a submission may not run code in the background while it is graded")

    def _defer_tests_without_parameters(self) -> None:
        """A test that takes no parameters needs nothing from the notebook; the grader process runs it on the
        submitted files (course.otter_plugin), so while grading it only fails here, with that reason, at no cost
        (the notebook's own check cells included)."""
        from otter.test_files.exception_test import test_case

        run_here = test_case.call_func

        def run_by_the_grader():  # a frame of its own: otter reads the failing line two frames below its runner
            raise AssertionError("run by the grader process, outside the notebook")

        def call_func(case, global_environment):
            if not case._get_func_params():
                return run_by_the_grader()
            return run_here(case, global_environment)
        self._set_trusted(test_case, "call_func", call_func)

    def _is_student(self, frame) -> bool:
        """Code of the notebook's functions and classes; not a cell's top level, since after the last student cell
        the only cells left are the grader's own (this guard's, and otter's that runs the tests)."""
        return frame.f_globals is self._namespace and frame.f_code.co_name != "<module>"

    def _from_student(self, frame) -> bool:
        """Whether `frame` (the caller of something) is student code, looking through torch's call machinery."""
        while frame is not None and frame.f_globals is not self._namespace and \
                frame.f_globals.get("__name__", "").split(".")[0] == "torch":
            frame = frame.f_back
        return frame is not None and self._is_student(frame)

    def _on_event(self, frame, event, arg):
        """Profile function while the tests run: a time limit on entering student code, repairs on leaving it."""
        if frame.f_globals is not self._namespace or event not in ("call", "return") or not self._is_student(frame) \
                or self._from_student(frame.f_back):
            return
        setitimer, signal = self._kit["setitimer"], self._kit["signal"]
        if event == "call":
            if self._timed_call is None:  # the outermost call from the tests: nested ones do not reset the clock
                left = self.tests_limit_s - self._tests_used_s
                self._call_limit = (f"ran longer than {self.call_limit_s:g} s" if self.call_limit_s <= left else
                                    f"was stopped: calls from the tests into the notebook's code used up the "
                                    f"{self.tests_limit_s:g} s allowed for all of them")
                self._timed_call, self._strikes, self._call_started = frame, 0, self._kit["monotonic"]()
                signal.signal(signal.SIGALRM, self._call_took_too_long)
                setitimer(signal.ITIMER_REAL, max(min(self.call_limit_s, left), 0.001))
            return
        if frame is self._timed_call:
            setitimer(signal.ITIMER_REAL, 0)
            self._timed_call = None
            self._tests_used_s += self._kit["monotonic"]() - self._call_started
        problems = self.repair()
        if problems:  # the tests that follow would run beside the notebook's code: every test fails (see the plugin)
            self._kit["print"](GUARD_MARK, "; ".join(f"{type(p).__name__}: {p}" for p in problems), file=self._stdout,
                               flush=True)
            raise problems[0]

    def _call_took_too_long(self, signum, frame):
        kit = self._kit
        running, caller = set(), frame
        while caller is not None:
            running.add(id(caller))
            caller = caller.f_back
        if self._timed_call is None or id(self._timed_call) not in running:
            # the call returned while the hook was off (see below): do what its return would have done
            kit["setprofile"](self._on_event)
            if self._timed_call is not None:
                self._timed_call = None
                self._tests_used_s += kit["monotonic"]() - self._call_started
                self.repair()
            return
        if frame is not None and frame.f_globals is _GUARD_GLOBALS:
            # the signal came while the guard's own code ran (the profile hook, a repair). Raising there would
            # switch the hook off, and with the hook on, the next chance to raise is again inside it: so the hook
            # is paused and the interruption tried again in 1 ms, in the student's code.
            kit["setprofile"](None)
            kit["setitimer"](kit["signal"].ITIMER_REAL, 0.001)
            return
        kit["setprofile"](self._on_event)
        name = getattr(getattr(self._timed_call, "f_code", None), "co_name", "?")
        if self._strikes:  # it caught the first interruption and went on: the kernel ends, with the reason
            self._kit["print"](GUARD_MARK, f"{name}(), called by a test, ignored the time limit; grading stopped",
                               file=self._stdout, flush=True)
            self._kit["exit"](3)
        self._strikes = 1
        self._kit["setitimer"](self._kit["signal"].ITIMER_REAL, 10)
        raise CellTimeLimitExceeded(f"{name}(), called by a test, {self._call_limit}; the grader stopped it")

    def _check_results(self, namespace: dict) -> None:
        """Make what the notebook's functions and modules return to a test plain data (see `plain_value`)."""
        import functools
        import types

        guard = self

        def checked(function):
            @functools.wraps(function)
            def call(*args, **kwargs):
                result = function(*args, **kwargs)
                return result if guard._from_student(sys._getframe(1)) else plain_value(result)
            return call

        for name, value in list(namespace.items()):
            if type(value) is types.FunctionType and value.__module__ == namespace.get("__name__"):
                namespace[name] = checked(value)

        def forward_hook(module, args, output):
            return None if guard._from_student(sys._getframe(1)) else plain_value(output)

        self._clear_module_hooks()
        handle = self._module_hooks.register_module_forward_hook(forward_hook)
        self._forward_hook_id = handle.id


_GUARD_GLOBALS = globals()


def _become_user(uid: int, gid: int, home: str) -> None:
    """Give up root for good (real, effective and saved ids): from here on the process has that user's rights."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise RuntimeError("the grading kernel could not give up root")
    # a process that changed its ids loses ownership of its /proc entries (its own fds, ...); give it back
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
    os.environ["HOME"] = home  # caches (matplotlib, ...) go there, not to root's home


def _refuse_new_audit_hooks(event, args):
    """Audit hooks cannot be removed, and one would run student code inside the tests: none may be added."""
    if event == "sys.addaudithook":
        raise RuntimeError("the grader does not allow audit hooks")
