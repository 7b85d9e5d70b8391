"""A plain PyTorch training loop with the conveniences the notebooks need.

`fit` picks CUDA when present, shows a progress bar, records a history, redraws the lecture's
live loss/accuracy plot and keeps the weights of the best validation epoch. During grading it
does nothing: the autograder evaluates the weights the student exported, it never retrains.
"""
from __future__ import annotations

import copy
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import quick
from .grading import is_grading


def get_device() -> torch.device:
    """CUDA when available (students train on a GPU), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_report(cpu_training: str = "") -> str:
    """One line for a notebook's setup cell: the GPU's name, or how to get one (in Colab) and how long the CPU takes."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name()}"
    where = "Runtime → Change runtime type → GPU" if "google.colab" in sys.modules else "training runs on the CPU"
    return f"no GPU: {where}" + (f" (on a CPU this notebook's training takes {cpu_training})" if cpu_training else "")


def seed_everything(seed: int = 42) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def binary_logit_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on raw logits (numerically stable; never feed it probabilities)."""
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), labels.float().reshape(-1))


def binary_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of examples whose logit has the sign of the label (logit > 0 means positive)."""
    return ((logits.reshape(-1) > 0).long() == labels.reshape(-1).long()).float().mean().item()


def _to(batch, device):
    return [t.to(device, non_blocking=True) if torch.is_tensor(t) else t for t in batch]


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, loss_fn: Callable = binary_logit_loss,
             accuracy_fn: Callable | None = binary_accuracy, device: torch.device | None = None) -> dict[str, float]:
    """Mean loss (and accuracy) over a loader, in batches, without gradients."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, total_correct, count = 0.0, 0.0, 0
    for *inputs, labels in loader:
        *inputs, labels = _to([*inputs, labels], device)
        output = model(*inputs)
        n = labels.shape[0]
        total_loss += loss_fn(output, labels).item() * n
        if accuracy_fn is not None:
            total_correct += accuracy_fn(output, labels) * n
        count += n
    model.train(was_training)
    result = {"loss": total_loss / max(count, 1)}
    if accuracy_fn is not None:
        result["acc"] = total_correct / max(count, 1)
    return result


def warmup_then_decay(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.1):
    """A learning-rate schedule stepped once per batch: a linear rise from 0 to the optimizer's learning rate
    over the first `warmup_fraction` of `total_steps`, then a linear decay to 0 at `total_steps` (a "one-cycle"
    shape). Pass it to `fit(..., scheduler=...)`."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1.0 - (step - warmup) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(model: torch.nn.Module, train_loader, val_loader, optimizer: torch.optim.Optimizer, epochs: int,
        loss_fn: Callable = binary_logit_loss, accuracy_fn: Callable | None = binary_accuracy,
        keep_best: bool = True, live_plot: bool = True, title: str = "", max_seconds: float | None = None,
        scheduler=None) -> dict[str, list[float]]:
    """Train `model` for `epochs` epochs; returns the history of losses and accuracies per epoch.

    Batches are tuples `(*inputs, labels)`; the model is called as `model(*inputs)`.
    With `keep_best`, the weights of the epoch with the best validation loss (or accuracy when
    one is measured) are restored at the end. `max_seconds` is a time budget, checked before every
    batch: the epoch in progress ends early (and is still validated) once it is spent. With COURSE_QUICK=1
    (course.quick) it trains one epoch of at most 20 batches.
    `scheduler` (optional, e.g. `warmup_then_decay`) is stepped after every batch.
    The history also records `seconds`: the time since the start of `fit` at the end of each epoch (validation included).
    """
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    if accuracy_fn is not None:
        history.update(train_acc=[], val_acc=[])
    history["seconds"] = []
    if is_grading():
        print("Grading mode: training is skipped; the autograder evaluates your exported weights.")
        return history

    from tqdm.auto import tqdm

    from .plotting import LivePlot

    max_batches = None
    if quick.enabled():
        epochs, max_batches = min(epochs, quick.FIT_EPOCHS), quick.FIT_BATCHES
    device = get_device()
    model.to(device)
    plot = LivePlot(title) if live_plot else None
    best_score, best_state, start = None, None, time.time()
    out_of_time = lambda: max_seconds is not None and time.time() - start > max_seconds
    for epoch in range(1, epochs + 1):
        model.train()
        sums, count = {"loss": 0.0, "acc": 0.0}, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", leave=False)
        for batch, (*inputs, labels) in enumerate(bar):
            if out_of_time() or (max_batches is not None and batch >= max_batches):
                break
            *inputs, labels = _to([*inputs, labels], device)
            output = model(*inputs)
            loss = loss_fn(output, labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch}: lower the learning rate or check the model.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            n = labels.shape[0]
            sums["loss"] += loss.item() * n
            if accuracy_fn is not None:
                sums["acc"] += accuracy_fn(output.detach(), labels) * n
            count += n
            bar.set_postfix(loss=f"{sums['loss'] / count:.4f}")
        if count == 0:
            break
        val = evaluate(model, val_loader, loss_fn, accuracy_fn, device)
        history["train_loss"].append(sums["loss"] / count)
        history["val_loss"].append(val["loss"])
        history["seconds"].append(time.time() - start)
        if accuracy_fn is not None:
            history["train_acc"].append(sums["acc"] / count)
            history["val_acc"].append(val["acc"])
        score = val["acc"] if accuracy_fn is not None else -val["loss"]
        if keep_best and (best_score is None or score > best_score):
            best_score, best_state = score, copy.deepcopy(model.state_dict())
        if plot is not None and plot.in_notebook:
            plot.update(history)
        else:
            print(f"epoch {epoch}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.items() if k != "seconds")
                  + f" ({history['seconds'][-1]:.0f} s)")
        if out_of_time():
            print(f"Stopping in epoch {epoch}: the {max_seconds:.0f} s budget is spent.")
            break
    if max_batches is not None:  # printed last: the live plot clears what was printed before it
        print(f"{quick.ENV}=1: a quick run of {epochs} epoch of at most {max_batches} batches (these weights will not pass)")
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
        print(f"Restored the weights of the best validation epoch ({'accuracy' if accuracy_fn else '-loss'} {best_score:.4f}).")
    return history


def save_weights(model_or_state, path) -> Path:
    """Save tensors as safetensors (a format that cannot execute code when loaded).

    Does nothing while grading, so re-running an export cell can never overwrite the submitted file.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if is_grading():
        return path
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))
    print(f"Saved {len(state)} tensors to {path} ({path.stat().st_size / 2**20:.2f} MB).")
    return path


def load_weights(model: torch.nn.Module, path) -> torch.nn.Module:
    """Load safetensors weights into `model` (strict: keys and shapes must match)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
    return model


def sanity_check(model: torch.nn.Module, batch, loss_fn: Callable, expected_initial: float, *,
                 overfit_below: float, tolerance: float = 0.15, steps: int = 200, lr: float = 3e-3,
                 max_seconds: float = 60.0, hint: str = "") -> dict:
    """Two checks, in seconds, before a long training run: what a wrong model costs is found before the run, not after.

    `batch` is a tuple `(*inputs, targets)`: the model is called as `model(*inputs)` and the loss as
    `loss_fn(output, targets)`.
    1. **Initial loss.** An untrained model guesses: its loss on `batch` should be close to `expected_initial`
       (ln 2 ≈ 0.693 for a binary classifier with one logit, ln V for V classes), within `tolerance`.
    2. **Overfitting one small batch.** A copy of the model, trained with Adam (`lr`) on `batch` alone, must bring the loss
       below `overfit_below` within `steps` steps and `max_seconds` seconds.
    The model itself is not changed (a copy trains, on the CPU with one thread, in eval mode so that dropout does not
    slow it down).
    Raises AssertionError with what is likely wrong (plus `hint`, the notebook's own advice); returns
    {"initial": ..., "final": ..., "steps": ..., "seconds": ...}. While grading it does nothing (returns {}).
    """
    if is_grading():
        return {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny batch gains nothing from threads, and on a busy CPU they cost seconds a step
    try:
        return _sanity_check(model, batch, loss_fn, expected_initial, overfit_below, tolerance, steps, lr, max_seconds,
                             hint)
    finally:
        torch.set_num_threads(threads)


def _sanity_check(model, batch, loss_fn, expected_initial, overfit_below, tolerance, steps, lr, max_seconds, hint):
    start = time.time()
    trial = copy.deepcopy(model).cpu().eval()
    batch = [b.cpu() if torch.is_tensor(b) else b for b in batch]
    *inputs, targets = batch
    advice = f" {hint}" if hint else ""
    with torch.no_grad():
        initial = float(loss_fn(trial(*inputs), targets))
    if not math.isfinite(initial) or abs(initial - expected_initial) > tolerance:
        raise AssertionError(
            f"the untrained model's loss is {initial:.3f}, expected about {expected_initial:.3f} (a model that guesses): "
            "check the model's output (raw logits, one per example or one per class; no sigmoid or softmax inside the "
            "model), the loss function and the targets; a much larger loss usually means outputs that are far too large "
            f"(a missing scale or an initialisation that is off).{advice}")
    parameters = [p for p in trial.parameters() if p.requires_grad]
    if not parameters:
        raise AssertionError(f"the model has no trainable parameters: did __init__ create its layers?{advice}")
    optimizer = torch.optim.Adam(parameters, lr=lr)
    loss, step = initial, 0
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        output = loss_fn(trial(*inputs), targets)
        output.backward()
        optimizer.step()
        loss = output.item()
        if loss < overfit_below or time.time() - start > max_seconds:
            break
    seconds = time.time() - start
    if not loss < overfit_below:
        raise AssertionError(
            f"after {step} steps ({seconds:.0f} s) on one small batch the loss is {loss:.3f}, not below {overfit_below} "
            f"(it started at {initial:.3f}): a correct model memorises a few examples quickly. Likely causes: a part of "
            "the model that training does not reach (a detached tensor, torch.no_grad(), a layer created inside forward), "
            f"a mask that hides what the model should see, or outputs that do not depend on the input.{advice}")
    print(f"sanity check passed in {seconds:.1f} s: initial loss {initial:.3f} (expected about {expected_initial:.3f}), "
          f"one batch overfitted to {loss:.3f} in {step} steps")
    return {"initial": initial, "final": loss, "steps": step, "seconds": seconds}
