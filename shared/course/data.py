"""Data sets used by the course, loaded through Hugging Face `datasets`.

Where the data comes from, in order:
  1. a local mirror: the folder named by the environment variable COURSE_DATA_DIR, or the folder
     `shared/data` beside this repository (how the course machines and CI work offline);
  2. the Hugging Face Hub (`stanfordnlp/imdb`, `karpathy/tiny_shakespeare`), which is what a student
     on a laptop or in Colab gets.
A clear error names both options when neither works.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import quick as quick_run

DATA_DIR_ENV = "COURSE_DATA_DIR"
IMDB_HUB_NAME = "stanfordnlp/imdb"
SHAKESPEARE_HUB_NAME = "karpathy/tiny_shakespeare"
# download sizes on the Hub (the dataset cards: IMDB's three splits, train, test and unsupervised; tiny-shakespeare)
IMDB_HUB_MB, SHAKESPEARE_HUB_MB = 84, 1.1
LECTURE_SEED = 42  # the lecture shuffles the (label-ordered) training split with seed 42


class DataUnavailableError(RuntimeError):
    """Neither a local mirror nor the Hugging Face Hub could provide a data set."""


def find_data_dir() -> Path | None:
    """The local mirror folder, or None when there is none."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataUnavailableError(f"{DATA_DIR_ENV}={env} is set but is not a folder.")
        return path
    # repository layout: <checkout>/shared/course/data.py, mirror at <checkout>/../shared/data
    beside_checkout = Path(__file__).resolve().parents[3] / "shared" / "data"
    return beside_checkout if beside_checkout.is_dir() else None


def _unavailable(what: str, local_name: str, hub_name: str, error: Exception) -> DataUnavailableError:
    return DataUnavailableError(
        f"Could not load {what}.\n"
        f"  Option 1 (offline): point {DATA_DIR_ENV} at a folder containing {local_name}.\n"
        f"  Option 2 (online): allow access to the Hugging Face Hub, which serves '{hub_name}'.\n"
        f"  Last error: {type(error).__name__}: {error}"
    )


def load_imdb(splits=("train", "test")):
    """IMDB reviews as a `datasets.DatasetDict` with columns `text` and `label` (0 neg, 1 pos)."""
    import datasets

    data_dir = find_data_dir()
    try:
        if data_dir is not None and (data_dir / "imdb" / "train.parquet").exists():
            files = {s: str(data_dir / "imdb" / f"{s}.parquet") for s in splits}
            return datasets.load_dataset("parquet", data_files=files)
        print(f"IMDB from the Hugging Face Hub ({IMDB_HUB_NAME}): about {IMDB_HUB_MB} MB the first time, then from the cache")
        full = datasets.load_dataset(IMDB_HUB_NAME)
        return datasets.DatasetDict({s: full[s] for s in splits})
    except Exception as error:  # noqa: BLE001 - re-raised with guidance
        raise _unavailable("the IMDB reviews", "imdb/{train,test}.parquet", IMDB_HUB_NAME, error) from error


def imdb_splits(n_val: int = 10_000, seed: int = LECTURE_SEED, quick: bool | None = None) -> dict[str, tuple[list[str], list[int]]]:
    """Train/validation/test texts and labels as in the lecture.

    The training split is ordered by label, so it is shuffled (seed 42) before the first `n_val`
    reviews are held out for validation. The test split is the full 25,000 reviews. `quick` (default:
    COURSE_QUICK=1, see course.quick) keeps only the first reviews of each split, the test split shuffled
    first (it is ordered by label too: its first 12,500 reviews are all negative).
    """
    if quick is None:
        quick = quick_run.enabled()
    imdb = load_imdb(("train", "test"))
    train = imdb["train"].shuffle(seed=seed)
    test = imdb["test"].shuffle(seed=seed) if quick else imdb["test"]
    texts, labels = train["text"], train["label"]
    splits = {
        "train": (texts[n_val:], labels[n_val:]),
        "val": (texts[:n_val], labels[:n_val]),
        "test": (test["text"], test["label"]),
    }
    if quick:
        splits = {name: (t[:quick_run.IMDB_REVIEWS[name]], l[:quick_run.IMDB_REVIEWS[name]]) for name, (t, l) in splits.items()}
        print(f"{quick_run.ENV}=1: " + ", ".join(f"{len(t):,} {name}" for name, (t, _) in splits.items()) + " reviews")
    return splits


def load_tinyshakespeare() -> str:
    """The 1,115,394-character tiny-shakespeare corpus as one string."""
    data_dir = find_data_dir()
    local = data_dir / "tinyshakespeare" / "input.txt" if data_dir is not None else None
    if local is not None and local.exists():
        return local.read_text(encoding="utf-8")
    try:
        import datasets

        print(f"tiny-shakespeare from the Hugging Face Hub ({SHAKESPEARE_HUB_NAME}): about {SHAKESPEARE_HUB_MB} MB the first "
              "time, then from the cache")
        parts = datasets.load_dataset(SHAKESPEARE_HUB_NAME)
        return "".join(parts[s][0]["text"] for s in ("train", "validation", "test"))
    except Exception as error:  # noqa: BLE001
        raise _unavailable("tiny-shakespeare", "tinyshakespeare/input.txt", SHAKESPEARE_HUB_NAME, error) from error


def cache_dir() -> Path:
    """Where expensive derived data (token ids) is cached: COURSE_CACHE_DIR or ~/.cache."""
    path = Path(os.environ.get("COURSE_CACHE_DIR", Path.home() / ".cache" / "transformers-course"))
    path.mkdir(parents=True, exist_ok=True)
    return path
