"""The assignments of the course and what each one's grading needs, in one place."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
RELEASES = ROOT / "assignments"
BUILD = ROOT / "build"


@dataclass(frozen=True)
class Assignment:
    name: str                      # folder and notebook name, e.g. "a1_tfidf"
    title: str
    grading_data: tuple[str, ...]  # files course.grading reads inside the zip (see autograder/build.py)
    student_files: tuple[str, ...] = field(default=())  # files students export next to the notebook
    # Gradescope leaderboard entries its weights tests post (course.grading.post_to_leaderboard): (name, order)
    leaderboard: tuple[tuple[str, str], ...] = field(default=())

    @property
    def master(self) -> Path:
        return SOLUTIONS / self.name / f"{self.name}.py"

    @property
    def release(self) -> Path:
        return RELEASES / self.name / f"{self.name}.ipynb"

    @property
    def zip_path(self) -> Path:
        return BUILD / "zips" / f"{self.name}-autograder.zip"


IMDB_GRADING_DATA = ("imdb_test_ids_10000.npz",)  # test split encoded with the course vocabulary
ACCURACY = (("Test accuracy", "desc"),)

_ALL = [
    Assignment("a1_tfidf", "TF-IDF bag-of-words classifier", IMDB_GRADING_DATA, ("a1_weights.safetensors",), ACCURACY),
    Assignment("a2_embeddings", "Word-embedding classifier", IMDB_GRADING_DATA, ("a2_weights.safetensors",), ACCURACY),
    Assignment("a3_self_attention", "Self-attention", ()),
    Assignment("a4_multihead", "Multi-head self-attention", ()),
    Assignment("a5_transformer", "Positional encoding and a Transformer classifier", IMDB_GRADING_DATA, ("a5_weights.safetensors",), ACCURACY),
    Assignment("a6_gpt", "Masked self-attention and a GPT sampler", ("shakespeare_val.txt",), ("a6_weights.safetensors",),
               (("Validation loss", "asc"),)),
]
# an assignment takes part once its master exists
ASSIGNMENTS = {a.name: a for a in _ALL if a.master.exists()}


def find(name_or_path: str) -> Assignment:
    """The assignment named `name_or_path`, or whose name starts a file name (a1_tfidf_jane.ipynb)."""
    stem = Path(name_or_path).name
    for name, assignment in ASSIGNMENTS.items():
        if stem == name or stem.startswith(name):
            return assignment
    raise KeyError(f"unknown assignment '{name_or_path}'; known: {', '.join(ASSIGNMENTS)}")
