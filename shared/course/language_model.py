"""Character-level language modelling: tokenizer, data split, batches, a step-based training loop.

Used by assignment 6 (a GPT on tiny-shakespeare). A language model here is any module that maps
token ids of shape (batch, time) to logits of shape (batch, time, vocab); the loss is the mean
cross-entropy of predicting token t+1 from tokens 0..t.

`train` does nothing during grading: the autograder evaluates the weights the student exported,
it never retrains.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from . import quick
from .grading import is_grading


class CharTokenizer:
    """Maps each distinct character of a text to an integer id (sorted order, so ids are stable)."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """int64 tensor of ids; raises KeyError naming a character that is not in the vocabulary."""
        try:
            return torch.tensor([self.index[c] for c in text], dtype=torch.long)
        except KeyError as error:
            raise KeyError(f"character {error.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def train_val_split(ids: torch.Tensor, train_fraction: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 90% of the ids for training, the last 10% for validation (no shuffling: text is a stream)."""
    cut = int(train_fraction * len(ids))
    return ids[:cut], ids[cut:]


def random_batch(data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator | None = None,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows: inputs data[i:i+block] and targets shifted by one, data[i+1:i+block+1]."""
    starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = data[starts[:, None] + offsets]
    y = data[starts[:, None] + offsets + 1]
    return (x.to(device), y.to(device)) if device is not None else (x, y)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every position of every sequence (natural log, nats per character)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def sequential_loss(model: torch.nn.Module, data: torch.Tensor, block_size: int, batch_size: int = 64,
                    max_windows: int | None = None) -> float:
    """Mean loss over consecutive non-overlapping windows of `block_size` characters (deterministic).

    This is the validation loss the autograder computes on the held-out 10% of the corpus.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n_windows = (len(data) - 1) // block_size
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    total, count = 0.0, 0
    for first in range(0, n_windows, batch_size):
        starts = torch.arange(first, min(first + batch_size, n_windows)) * block_size
        offsets = torch.arange(block_size)
        x = data[starts[:, None] + offsets].to(device)
        y = data[starts[:, None] + offsets + 1].to(device)
        loss = lm_loss(model(x), y)
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, data: torch.Tensor, block_size: int, batch_size: int, batches: int,
                  generator: torch.Generator) -> float:
    """Mean loss over a few random batches: a quick, noisy estimate used during training."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = [lm_loss(model(x), y).item() for x, y in
              (random_batch(data, block_size, batch_size, generator, device) for _ in range(batches))]
    model.train(was_training)
    return sum(losses) / len(losses)


def plot_lm_history(history: dict[str, list[float]], title: str = "", ax=None):
    """Training and validation loss against the training step."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(history["step"], history["train_loss"], "r-", lw=2, label="train loss")
    ax.plot(history["step"], history["val_loss"], "r:", lw=2, label="val loss")
    if history["val_loss"]:
        title = f"{title} [last val loss {history['val_loss'][-1]:.3f}]".strip()
    ax.set(xlabel="step", ylabel="cross-entropy (nats/char)", title=title)
    ax.grid(True)
    ax.legend()
    return ax


def train(model: torch.nn.Module, train_data: torch.Tensor, val_data: torch.Tensor, steps: int, block_size: int,
          batch_size: int = 32, lr: float = 1e-3, eval_every: int = 100, eval_batches: int = 10,
          max_seconds: float | None = None, seed: int = 0, title: str = "", live_plot: bool = True,
          device=None) -> dict[str, list[float]]:
    """Train a language model with AdamW for `steps` random batches; returns the loss history.

    Every `eval_every` steps the train and validation losses are estimated on `eval_batches` random
    batches each, recorded in the history and drawn (live in a notebook). `max_seconds` stops early
    after a time budget. The learning rate decays along a cosine to 10% of `lr` over the steps. With COURSE_QUICK=1
    (course.quick) it trains at most 50 steps.
    """
    history: dict[str, list[float]] = {"step": [], "train_loss": [], "val_loss": [], "seconds": []}
    if is_grading():
        print("Grading mode: training is skipped; the autograder evaluates your exported weights.")
        return history

    from tqdm.auto import tqdm

    from .plotting import LivePlot
    from .training import get_device

    if quick.enabled():
        steps, eval_batches = min(steps, quick.LM_STEPS), min(eval_batches, 2)
    device = device or get_device()
    model.to(device)
    batches = torch.Generator().manual_seed(seed)
    evals = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1))))
    plot = LivePlot(title) if live_plot else None
    in_notebook = plot is not None and plot.in_notebook
    start = time.time()

    def record(step):
        history["step"].append(step)
        history["train_loss"].append(estimate_loss(model, train_data, block_size, batch_size, eval_batches, evals))
        history["val_loss"].append(estimate_loss(model, val_data, block_size, batch_size, eval_batches, evals))
        history["seconds"].append(time.time() - start)
        if in_notebook:
            from IPython.display import clear_output, display
            import matplotlib.pyplot as plt

            clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(8, 3.5))
            plot_lm_history(history, title, ax)
            display(fig)
            plt.close(fig)

    model.train()
    bar = tqdm(range(1, steps + 1), desc="training", unit="step")
    for step in bar:
        x, y = random_batch(train_data, block_size, batch_size, batches, device)
        loss = lm_loss(model(x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower the learning rate or check the model.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        out_of_time = max_seconds is not None and time.time() - start > max_seconds
        if step % eval_every == 0 or step == steps or out_of_time:
            record(step)
            bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{history['val_loss'][-1]:.3f}")
        if out_of_time:
            print(f"Stopping after {step} steps: the {max_seconds:.0f} s budget is spent.")
            break
    bar.close()
    model.eval()
    print(f"trained {history['step'][-1]} steps in {time.time() - start:.0f} s; "
          f"estimated val loss {history['val_loss'][-1]:.3f}")
    if quick.enabled():
        print(f"{quick.ENV}=1: a quick run of at most {quick.LM_STEPS} steps (these weights will not pass)")
    return history
