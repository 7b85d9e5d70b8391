"""Support for grading: grading-mode detection and safe loading of submitted weights.

A submitted weights file is read with safetensors only (it holds tensors and nothing that can
execute), after checking its size; keys, shapes and values are checked with messages a student
can act on.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

GRADING_ENV = "COURSE_GRADING"
MAX_WEIGHTS_MB = 50


class SubmissionError(AssertionError):
    """A submitted file is missing or unusable; the message says what to fix."""


def is_grading() -> bool:
    """True while the autograder runs the notebook (otter's grading mode, or COURSE_GRADING=1)."""
    if os.environ.get(GRADING_ENV) == "1":
        return True
    try:
        from otter import Notebook
    except ImportError:
        return False
    return bool(getattr(Notebook, "_grading_mode", False))


def load_submitted_weights(path, expected_shapes: dict[str, tuple[int, ...]], max_mb: float = MAX_WEIGHTS_MB) -> dict[str, torch.Tensor]:
    """Load a student's safetensors file and check it holds exactly the expected tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path.name} is missing: run the export cell and submit the zip it makes.")
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_mb:
        raise SubmissionError(f"{path.name} is {size_mb:.1f} MB, over the {max_mb} MB cap.")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise SubmissionError(f"{path.name} is not a safetensors file saved by course.training.save_weights ({error}).") from None
    missing = sorted(set(expected_shapes) - set(state))
    extra = sorted(set(state) - set(expected_shapes))
    if missing or extra:
        raise SubmissionError(f"{path.name} has the wrong tensors: missing {missing}, unexpected {extra}.")
    for name, shape in expected_shapes.items():
        if tuple(state[name].shape) != tuple(shape):
            raise SubmissionError(f"{path.name}: '{name}' has shape {tuple(state[name].shape)}, expected {tuple(shape)}.")
        if state[name].is_floating_point() and not torch.isfinite(state[name]).all():
            raise SubmissionError(f"{path.name}: '{name}' contains NaN or infinite values.")
    return {name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in state.items()}


GRADING_DATA_DIR = Path("grading_data")  # shipped inside each autograder zip


def imdb_test_ids_file(vocab_size: int = 10_000) -> str:
    return f"imdb_test_ids_{vocab_size}.npz"


def encode_imdb_test(path, vocab_size: int = 10_000) -> None:
    """Write the 25,000 IMDB test reviews, encoded with the course vocabulary, as compact arrays.

    The autograder ships this file so that grading needs no tokenizing, no network and little memory.
    """
    import numpy as np

    from .data import imdb_splits
    from .text import Vocabulary, encode_texts

    splits = imdb_splits()
    vocab = Vocabulary.from_texts(splits["train"][0] + splits["val"][0], vocab_size)
    ids = encode_texts(splits["test"][0], vocab)
    offsets = np.cumsum([0] + [len(x) for x in ids])
    np.savez_compressed(path, ids=np.concatenate(ids).astype(np.int32), offsets=offsets,
                        labels=np.asarray(splits["test"][1], dtype=np.int8), vocab_fingerprint=vocab.fingerprint())


def imdb_test_ids(vocab_size: int = 10_000):
    """Token ids (one int32 array per review) and labels of the 25,000 IMDB test reviews.

    Inside an autograder zip they come from `grading_data/` (see `encode_imdb_test`); elsewhere the
    file is made on the fly from `course.data` and cached.
    """
    import numpy as np

    path = GRADING_DATA_DIR / imdb_test_ids_file(vocab_size)
    if not path.exists():
        from .data import cache_dir

        path = cache_dir() / imdb_test_ids_file(vocab_size)
        if not path.exists():
            encode_imdb_test(path, vocab_size)
    with np.load(path) as stored:
        flat, offsets, labels = stored["ids"], stored["offsets"], stored["labels"]
    if flat.size and flat.max() >= vocab_size:
        raise SubmissionError(f"{path} holds ids beyond the vocabulary size {vocab_size}")
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)], labels.astype(np.int64).tolist()


# ---- what the grading guard (course.otter_plugin) uses inside the grading kernel ----

# types whose comparisons the grader trusts: they come from Python, torch, NumPy or this library
_TRUSTED_MODULES = ("builtins", "torch", "numpy", "collections", "course", "enum", "fractions", "decimal", "datetime")


def plain_value(value, _depth: int = 0):
    """`value` as plain data whose comparisons tell the truth, for a test to check.

    A subclass of a tensor, array, str, int, float, list, tuple, dict or set can redefine `==`, `shape` or
    `__torch_function__`; it becomes an object of its base type holding the same data (containers are
    converted element by element). An object of any other class that defines its own `==` is refused with
    a TypeError. Everything else (modules, functions, None, ...) is returned unchanged.
    """
    import numpy as np

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
    if kind.__eq__ is not object.__eq__ and kind.__module__.split(".")[0] not in _TRUSTED_MODULES:
        raise TypeError(f"a '{kind.__qualname__}' object, which defines its own ==: the grader accepts plain Python, "
                        "NumPy and torch values")
    return value


def check_results_for_tests(namespace: dict) -> None:
    """Make what the notebook's code returns to a test plain data (see `plain_value`).

    Wraps the functions the notebook defined, and adds a global forward hook for its modules. Calls that
    come from the student's own code are left alone, so a helper may still return a Counter to its caller.
    """
    import functools
    import sys
    import types

    def from_student(frame) -> bool:
        while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "torch":
            frame = frame.f_back  # torch's module-call machinery
        return frame is not None and frame.f_globals is namespace

    def checked(function):
        @functools.wraps(function)
        def call(*args, **kwargs):
            result = function(*args, **kwargs)
            return result if from_student(sys._getframe(1)) else plain_value(result)
        return call

    for name, value in list(namespace.items()):
        if type(value) is types.FunctionType and value.__module__ == namespace.get("__name__"):
            namespace[name] = checked(value)

    def forward_hook(module, args, output):
        return None if from_student(sys._getframe(1)) else plain_value(output)

    hooks = torch.nn.modules.module
    for registry in (hooks._global_forward_hooks, hooks._global_forward_pre_hooks, hooks._global_backward_hooks,
                     hooks._global_buffer_registration_hooks, hooks._global_module_registration_hooks,
                     hooks._global_parameter_registration_hooks,
                     hooks._global_backward_pre_hooks, hooks._global_forward_hooks_always_called,
                     hooks._global_forward_hooks_with_kwargs):
        registry.clear()  # hooks the notebook registered could rewrite what a test sees
    hooks.register_module_forward_hook(forward_hook)


def stop_new_threads(known: set[int], wait_s: float = 2.0) -> list[int]:
    """Stop the Python threads started since `known` (thread ids) was taken; returns the ids that survive.

    Each new thread gets SystemExit raised in it, repeatedly, until it ends or `wait_s` passes. Left
    running, such a thread could undo the guard's repairs while the tests run.
    """
    import ctypes
    import sys
    import threading
    import time

    deadline = time.monotonic() + wait_s
    while True:
        alive = [ident for ident in sys._current_frames() if ident not in known and ident != threading.get_ident()]
        if not alive or time.monotonic() > deadline:
            return alive
        for ident in alive:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(SystemExit))
        time.sleep(0.02)
