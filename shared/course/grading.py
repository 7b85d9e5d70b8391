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


LEADERBOARD: dict[str, float] = {}  # what tests of exported files posted, read by the grader after each test


def post_to_leaderboard(name: str, value: float) -> None:
    """A test of the exported weights posts the number it computed (test accuracy, validation loss) under `name`;
    the autograder shows it on Gradescope's leaderboard when the course enables it (course.toml)."""
    LEADERBOARD[name] = float(value)


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

    splits = imdb_splits(quick=False)  # the full splits, COURSE_QUICK=1 or not
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
