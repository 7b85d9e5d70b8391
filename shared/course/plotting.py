"""Plots the notebooks show: training curves (live while training) and heatmaps."""
from __future__ import annotations

import matplotlib.pyplot as plt


def plot_history(history: dict[str, list[float]], title: str = "", ax=None):
    """Loss and accuracy per epoch: solid for training, dotted for validation (as in the lecture)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    styles = {"train_loss": ("r", "-"), "val_loss": ("r", ":"), "train_acc": ("b", "-"), "val_acc": ("b", ":")}
    for key, values in history.items():
        if key in styles and values:
            color, line = styles[key]
            ax.plot(range(1, len(values) + 1), values, color=color, linestyle=line, lw=2, label=key)
    if history.get("val_acc"):
        best = max(history["val_acc"])
        title = f"{title} [best val acc {best:.4f}]".strip()
    ax.set(xlabel="epoch", ylabel="loss / accuracy", title=title)
    ax.grid(True)
    ax.legend()
    return ax


class LivePlot:
    """Redraws the training curves after every epoch inside a notebook; prints elsewhere."""

    def __init__(self, title: str = ""):
        self.title = title
        try:
            from IPython import get_ipython

            self.in_notebook = get_ipython() is not None and "IPKernelApp" in get_ipython().config
        except ImportError:
            self.in_notebook = False

    def update(self, history: dict[str, list[float]]):
        if not self.in_notebook:
            return
        from IPython.display import clear_output, display

        clear_output(wait=True)
        fig, ax = plt.subplots(figsize=(8, 3.5))
        plot_history(history, self.title, ax)
        display(fig)
        plt.close(fig)


def heatmap(matrix, row_labels=None, col_labels=None, title: str = "", ax=None, cmap="viridis"):
    """A labelled heatmap, e.g. an attention matrix (rows attend to columns)."""
    import numpy as np

    matrix = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix)
    if ax is None:
        _, ax = plt.subplots(figsize=(1 + 0.5 * matrix.shape[1], 1 + 0.45 * matrix.shape[0]) if matrix.shape[1] < 20 else (7, 5))
    image = ax.imshow(matrix, cmap=cmap, aspect="auto")
    if row_labels is not None:
        ax.set_yticks(range(len(row_labels)), row_labels)
    if col_labels is not None:
        ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha="right")
    ax.set_title(title)
    plt.colorbar(image, ax=ax)
    return ax


# Test accuracy on the 25,000 IMDB test reviews of every classifier of the course, each trained as its notebook trains
# it, seed 42 (seeds 42, 1, 2 in the comments), measured on a 2-core CPU. a1's multi-hot row is a1's network and
# training on plain multi-hot rows (no TF-IDF); a3 and a4 are their notebooks' demo classifiers (8,000 training
# reviews, the last 128 tokens, two epochs), evaluated on the whole test split; a2's figures are its reference build's.
COURSE_TEST_ACCURACY: list[tuple[str, str, float]] = [
    ("a1", "bag of words: multi-hot MLP", 0.8791),         # 87.91, 87.94, 88.04
    ("a1", "bag of words: TF-IDF MLP", 0.8819),            # 88.19, 88.39, 88.23
    ("a2", "learned embeddings, plain mean", 0.8719),
    ("a2", "learned embeddings, masked mean", 0.8756),     # 87.56, 87.40, 87.29
    ("a2", "GloVe, frozen", 0.7379),
    ("a2", "GloVe, fine-tuned", 0.8727),
    ("a3", "self-attention, one head (demo)", 0.8497),     # 84.97, 84.85, 84.75
    ("a4", "multi-head self-attention (demo)", 0.8450),    # 84.50, 84.26, 84.96
    ("a5", "Transformer encoder", 0.8850),                # 88.50, 88.41, 88.50
]


def progression(results=None, yours: dict[str, float] | None = None, ax=None, title: str = ""):
    """Horizontal bars of test accuracy, one per model, in course order; `yours` adds your own results (in red).

    `results` is a list of (assignment, model, accuracy) and defaults to COURSE_TEST_ACCURACY.
    """
    rows = list(results if results is not None else COURSE_TEST_ACCURACY)
    mine = list((yours or {}).items())
    labels = [f"{a}: {m}" for a, m, _ in rows] + [f"you: {m}" for m, _ in mine]
    values = [v for _, _, v in rows] + [v for _, v in mine]
    colors = ["tab:blue"] * len(rows) + ["tab:red"] * len(mine)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.42 * len(values) + 1.2))
    y = list(range(len(values)))[::-1]
    ax.barh(y, [100 * v for v in values], color=colors)
    for yi, v in zip(y, values):
        ax.text(100 * v + 0.15, yi, f"{100 * v:.2f}%", va="center", fontsize=9)
    ax.set_yticks(y, labels)
    low = min(values) if values else 0.5
    ax.set_xlim(max(50.0, 100 * low - 3), 100 * max(values) + 2 if values else 100)
    ax.set(xlabel="test accuracy on the 25,000 IMDB test reviews (%)",
           title=title or "From a bag of words to a Transformer")
    ax.grid(True, axis="x")
    return ax
