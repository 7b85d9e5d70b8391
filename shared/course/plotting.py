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
