# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [raw]
# # ASSIGNMENT CONFIG
# name: a3_self_attention
# init_cell: true
# check_all_cell: false
# strip_solutions_from_all_cells: true
# export_cell:
#   pdf: false
#   run_tests: false
#   instructions: "Save the notebook first (Ctrl+S), then run this cell when you are done; submit the zip it creates (it contains your notebook and your written answers (a3_self_attention_written_answers.md)). On Gradescope you see a submission check and the public checks at once, and the hidden tests when the course staff publish them."
# generate:
#   pdf: false
#   show_stdout: false
#   show_hidden: true
# python_version: "3.11"
# requirements: requirements.txt
# overwrite_requirements: true
# autograder_files:
#   - course
#   - grading_data
# tests:
#   files: false
#   ok_format: false

# %% [markdown]
# # Assignment 3 — Self-attention
#
# A bag of words (assignment 1) and an averaged embedding (assignment 2) treat every word on its own: "terrible" pulls a
# review towards negative whatever stands next to it. **Self-attention** lets every token look at every other token and
# mix their vectors, so that "not" can change what "terrible" means. In this assignment you build it step by step:
#
# 1. **simple self-attention**, with no parameters at all: $W = \mathrm{softmax}(X^T X)$, $Y^T = W X^T$,
# 2. **scaled dot-product attention** with queries, keys and values, a division by $\sqrt{d}$, and a mask for padding,
#    plus a small experiment that shows *why* we scale,
# 3. **standard self-attention**: learned maps $k_i = K x_i + b_k$, $q_i = Q x_i + b_q$, $v_i = V x_i + b_v$,
# 4. a small IMDB sentiment model with one self-attention layer, and a look at its attention on
#    "the restaurant is not too terrible".
#
# **From the lecture's notation to code.** The lecture stores the $t$ input vectors $x_1, \dots, x_t$ (each of dimension
# $k$) as the *columns* of a $k \times t$ matrix $X$. From here on (and in assignments 4–6) we call that dimension $d$,
# because $k$ will name the keys. PyTorch code works **batch-first**: a batch of sequences is a tensor
# of shape `(batch, t, d)` whose *rows* are the tokens. So the lecture's $X^T X$ (all dot products $x_i^T x_j$, a
# $t \times t$ matrix) is `x @ x.transpose(-2, -1)` in code, the softmax runs over $j$ (the **last** axis: each row of
# $W$ sums to one), and $Y^T = W X^T$ becomes `y = w @ x`, again of shape `(batch, t, d)`: row $i$ of `y` is
# $y_i = \sum_j w_{ij} x_j$.
#
# Each step has a stub to fill in and a public check (`grader.check(...)`) for instant feedback. Hidden tests run your
# functions on fresh inputs when you submit. Cells marked *not graded* (data, training, plots) are skipped by the
# autograder: nothing you train is graded in this assignment, but training shows you what attention learns.
#
# **Time and target.** Training the small model takes about a minute on a laptop CPU; it reaches a validation accuracy
# of roughly 0.80–0.87 (not graded).

# %% tags=["otter_ignore"]
# Setup: make release writes the course's install-and-check lines here (autograder/config.py).

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from course import data, text, training, plotting

training.seed_everything(42)
DEVICE = training.get_device()
CPU_TRAINING = "about a minute"  # this notebook's training on a laptop CPU
print(training.device_report(CPU_TRAINING))

# %%
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# %% [markdown]
# ## 1. Simple self-attention
#
# For every pair of tokens, the raw weight is the dot product $w'_{ij} = x_i^T x_j$ (token $i$ with token $j$, itself
# included). A softmax over $j$ turns row $i$ into positive weights that sum to one, the **attention vector** of token
# $i$. The output $y_i = \sum_j w_{ij} x_j$ is a mixture of all input vectors, weighted by how similar they are to $x_i$.
# There are no parameters: the embeddings alone decide who attends to whom.
#
# Write it for a batch `x` of shape `(batch, t, d)`, without a Python loop over the batch or the tokens, and return
# both the output `y` (shape `(batch, t, d)`) and the weights `w` (shape `(batch, t, t)`, `w[b, i, j]` = how much token
# `i` attends to token `j`). No scaling here: that comes in part 2. It must work for any batch size and length (a batch
# of one, a single token) and stay differentiable along every path, through `w` too: no `.detach()`, no
# `torch.no_grad()` (the models of this assignment learn through it; the same holds for parts 2 and 3).
#
# **Example** (the check below): for `x = [[[1, 0], [0, 1], [1, 1]]]` (shape `(1, 3, 2)`), `w` has shape
# `(1, 3, 3)` and `y` shape `(1, 3, 2)`; row 0 of `w` is softmax([1, 0, 1]) = `[0.4223, 0.1554, 0.4223]`, and every row of
# `w` sums to 1.
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q1_simple_self_attention
# points: 3

# %%
def simple_self_attention(x):
    """Parameter-free self-attention: returns (y, w) with w = softmax(x xᵀ) over the last axis and y = w x.

    x: (batch, t, d) float tensor. Returns y: (batch, t, d) and w: (batch, t, t); every row of w sums to 1.
    """
    # BEGIN SOLUTION
    scores = x @ x.transpose(-2, -1)
    w = torch.softmax(scores, dim=-1)
    return w @ x, w
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_simple_small_example(simple_self_attention):
    assert simple_self_attention is not None, "simple_self_attention is not defined: run the cell that defines it (section 1) first"
    import torch
    import torch.nn as nn
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    result = simple_self_attention(x)
    assert result is not None, "simple_self_attention returned None: fill in the stub."
    y, w = result
    assert tuple(w.shape) == (1, 3, 3), f"weights: expected shape (1, 3, 3), got {tuple(w.shape)}"
    assert tuple(y.shape) == (1, 3, 2), f"output: expected shape (1, 3, 2), got {tuple(y.shape)}"
    assert torch.allclose(w.sum(-1), torch.ones(1, 3), atol=1e-5), "each row of w (one token's attention vector) must sum to 1"
    e = torch.exp(torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(w[0, 0], e / e.sum(), atol=1e-5), f"row 0 of w should be softmax([1, 0, 1]), got {w[0, 0].tolist()}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_simple_matches_formula_on_random_batches(simple_self_attention):
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(0)
    for batch, t, d in [(4, 7, 6), (1, 1, 3), (1, 9, 2), (3, 16, 8)]:  # a batch of one and a single token included
        x = torch.randn(batch, t, d, generator=gen).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        y, w = simple_self_attention(x)
        assert tuple(y.shape) == (batch, t, d) and tuple(w.shape) == (batch, t, t), "y must be (batch, t, d) and w (batch, t, t)"
        scores = torch.einsum("bik,bjk->bij", x_ref, x_ref)
        expected_w = torch.exp(scores - scores.amax(-1, keepdim=True))
        expected_w = expected_w / expected_w.sum(-1, keepdim=True)
        expected_y = torch.einsum("bij,bjk->bik", expected_w, x_ref)
        assert torch.allclose(w.sum(-1), torch.ones(batch, t), atol=1e-5), "rows of w must sum to 1: softmax over the last axis (j)"
        assert torch.allclose(w, expected_w, atol=1e-5), "w must be softmax(x xᵀ) over the last axis, with no scaling"
        assert torch.allclose(y, expected_y, atol=1e-5), "y must be w @ x: y_i = sum_j w_ij x_j"
        # gradients flow through the weights too: a loss on y and w reaches x along every path of the formula
        g_y, g_w = torch.randn(batch, t, d, generator=gen), torch.randn(batch, t, t, generator=gen)
        ((y * g_y).sum() + (w * g_w).sum()).backward()
        ((expected_y * g_y).sum() + (expected_w * g_w).sum()).backward()
        assert x.grad is not None and torch.allclose(x.grad, x_ref.grad, atol=1e-4), (
            "the gradient with respect to x differs from the formula's: nothing may be detached or computed under no_grad")
    x = torch.randn(4, 7, 6, generator=gen)
    y, _ = simple_self_attention(x)
    y1, w1 = simple_self_attention(x[2:3])
    assert torch.allclose(y1, y[2:3], atol=1e-5), "each sequence of the batch must be processed independently"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_simple_is_permutation_equivariant(simple_self_attention):
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 5, generator=gen) * 0.5
    perm = torch.randperm(9, generator=gen)
    y, w = simple_self_attention(x)
    y_p, w_p = simple_self_attention(x[:, perm])
    assert torch.allclose(y_p, y[:, perm], atol=1e-5), (
        "with no positional information, permuting the input tokens must permute the outputs the same way")
    assert torch.allclose(w_p, w[:, perm][:, :, perm], atol=1e-5), "permuting the tokens must permute rows and columns of w"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 2. Scaled dot-product attention, with a mask
#
# Standard attention separates three roles. The **query** $q_i$ is the token that is looking, the **key** $k_j$ is the
# token it is compared with, and the **value** $v_j$ is what token $j$ hands over when it is attended to:
# $$w'_{ij} = \frac{q_i^T k_j}{\sqrt{d}}, \qquad w_{ij} = \mathrm{softmax}_j(w'_{ij}), \qquad y_i = \sum_j w_{ij} v_j,$$
# where $d$ is the dimension of queries and keys (the **last** axis of `q`). Simple self-attention is the special case
# $q = k = v = x$ without the scaling.
#
# **Why divide by $\sqrt{d}$?** If the entries of $q_i$ and $k_j$ are independent with mean 0 and variance 1, the dot
# product $q_i^T k_j$ is a sum of $d$ such products: its variance is $d$, its typical size $\sqrt{d}$. With large $d$ the
# scores spread far apart, the softmax puts almost all weight on the largest one (it *saturates*), and its gradient
# $\partial w_{ij} / \partial w'_{il} = w_{ij}(\delta_{jl} - w_{il})$ is almost zero everywhere: learning stalls. Dividing
# by $\sqrt{d}$ keeps the scores at variance 1 whatever the dimension.
#
# **Masks.** Batches of reviews are padded to the same length, and a token must not attend to padding. `mask` is a
# boolean tensor that broadcasts against the scores `(..., t_q, t_k)`; **`True` means "may attend", `False` means
# "ignore this key"**: the same polarity as `torch.nn.functional.scaled_dot_product_attention`. For a padding mask of shape
# `(batch, t_k)` pass `mask[:, None, :]`. Masked keys must receive a weight of **exactly zero**: set their scores to
# `-inf` (or the most negative float) *before* the softmax, with `masked_fill` or by adding a mask of $0$ / $-\infty$.
# Every query must be allowed to attend to at least one key.
#
# **The course's convention** (assignments 3–6 keep it):
# - a boolean mask says **`True` = may attend / a real token**, `False` = ignore; a padding mask has shape
#   `(batch, t)`, one entry per token;
# - a review keeps its **first** tokens and is **padded at the end** with the token id 0, so every review starts at
#   position 0 (which matters once positions enter, in assignment 5). Assignment 2 followed the lecture's Keras
#   default, padding and cutting at the front; for a mean over real tokens the side makes no difference.
#
# Where a PyTorch function wants the opposite polarity (`nn.MultiheadAttention`'s `key_padding_mask`, `True` =
# padding), the notebooks write the conversion where they call it: `key_padding_mask = ~mask`.
#
# Use `torch.softmax` (or `F.softmax`): it subtracts the row maximum before exponentiating, so scores of $10^4$ do not
# overflow. Do not call `F.scaled_dot_product_attention` here (it does not return the weights); the hidden tests compare
# with it.
#
# **Example** (the check below): one query `q = [[[2, 0, 0, 0]]]`, two keys `k = [[[1, 0, 0, 0], [0, 0, 0, 0]]]` and
# values `v = [[[1, 0], [0, 1]]]`: the scores are `[2, 0] / √4 = [1, 0]`, so the weights (shape `(1, 1, 2)`) and the output
# (shape `(1, 1, 2)`) are both `[0.7311, 0.2689]`.
#
# **(5 points: 1 public, 4 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q2_scaled_dot_product
# points: 5

# %%
def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q kᵀ / sqrt(d)) v, where d = q.shape[-1]. Returns (output, weights).

    q: (..., t_q, d), k: (..., t_k, d), v: (..., t_k, d_v).
    mask: None, or a bool tensor broadcastable to (..., t_q, t_k); True = may attend, False = ignore (weight 0).
    Returns output (..., t_q, d_v) and weights (..., t_q, t_k), whose rows sum to 1.
    """
    # BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_sdpa_small_example(scaled_dot_product_attention):
    assert scaled_dot_product_attention is not None, "scaled_dot_product_attention is not defined: run the cell that defines it (section 2) first"
    import torch
    import torch.nn as nn
    import math
    q = torch.tensor([[[2.0, 0.0, 0.0, 0.0]]])
    k = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    result = scaled_dot_product_attention(q, k, v)
    assert result is not None, "scaled_dot_product_attention returned None: fill in the stub."
    out, w = result
    assert tuple(out.shape) == (1, 1, 2) and tuple(w.shape) == (1, 1, 2), "output must be (1, 1, 2) and weights (1, 1, 2)"
    # scores are [2, 0] / sqrt(4) = [1, 0]
    expected = torch.softmax(torch.tensor([1.0, 0.0]), dim=0)
    assert torch.allclose(w.flatten(), expected, atol=1e-5), f"weights should be softmax([2, 0] / sqrt(4)) = {expected.tolist()}, got {w.flatten().tolist()}"
    assert torch.allclose(out.flatten(), expected, atol=1e-5), "output should be the weighted sum of the values"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_sdpa_matches_pytorch(scaled_dot_product_attention):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(2)
    shapes = [((3, 5, 16), (3, 7, 16), 16), ((2, 4, 6, 8), (2, 4, 6, 8), 3), ((1, 1, 64), (1, 9, 64), 5),
              ((1, 1, 4), (1, 1, 4), 2), ((2, 3, 1), (2, 5, 1), 7)]  # one query, one key, key dimension 1
    for shape_q, shape_k, d_v in shapes:
        q = torch.randn(*shape_q, generator=gen).requires_grad_()
        k = torch.randn(*shape_k, generator=gen).requires_grad_()
        v = torch.randn(*shape_k[:-1], d_v, generator=gen).requires_grad_()
        q_ref, k_ref, v_ref = (t.detach().clone().requires_grad_() for t in (q, k, v))
        out, w = scaled_dot_product_attention(q, k, v)
        expected = F.scaled_dot_product_attention(q_ref, k_ref, v_ref)
        assert tuple(out.shape) == tuple(expected.shape), f"output shape {tuple(out.shape)}, expected {tuple(expected.shape)}"
        assert tuple(w.shape) == (*shape_q[:-1], shape_k[-2]), f"weights must have shape (..., t_q, t_k), got {tuple(w.shape)}"
        assert torch.allclose(out, expected, atol=1e-5), (
            f"output differs from torch's scaled_dot_product_attention for q {shape_q}, k {shape_k}: "
            "check the scaling (by sqrt of the key dimension), the softmax axis and the transposes")
        assert torch.allclose(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-5), "each row of the weights must sum to 1"
        upstream = torch.randn(expected.shape, generator=gen)
        (out * upstream).sum().backward()
        (expected * upstream).sum().backward()
        for name, mine, ref in (("q", q, q_ref), ("k", k, k_ref), ("v", v, v_ref)):
            assert mine.grad is not None and torch.allclose(mine.grad, ref.grad, atol=1e-4), (
                f"the gradient with respect to {name} differs from torch's scaled_dot_product_attention: "
                "the scores and weights must stay differentiable (no detach, no torch.no_grad)")

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_sdpa_scales_by_sqrt_of_key_dimension(scaled_dot_product_attention):
    import torch
    import torch.nn as nn
    import math
    for d in (1, 4, 25, 100):
        q = torch.full((1, 1, d), 1.0 / d)  # q·k = c for keys k = c * ones
        k = torch.tensor([[[3.0] * d, [0.0] * d]])
        v = torch.eye(2).unsqueeze(0)
        out, w = scaled_dot_product_attention(q, k, v)
        expected = torch.softmax(torch.tensor([3.0 / math.sqrt(d), 0.0]), dim=0)
        assert torch.allclose(w.flatten(), expected, atol=1e-5), (
            f"with key dimension {d}, a dot product of 3 must become 3 / sqrt({d}) before the softmax "
            f"(expected weights {expected.tolist()}, got {w.flatten().tolist()})")

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_sdpa_is_numerically_stable(scaled_dot_product_attention):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(2, 6, 16, generator=gen) * 30  # scores in the hundreds or thousands
    k = torch.randn(2, 6, 16, generator=gen) * 30
    v = torch.randn(2, 6, 4, generator=gen)
    out, w = scaled_dot_product_attention(q, k, v)
    assert torch.isfinite(w).all() and torch.isfinite(out).all(), (
        "large scores gave NaN or inf: use torch.softmax (it subtracts the row maximum), not exp(...) / sum")
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-4), "large scores give a wrong result"
    ones = torch.ones(2, 6, 16)
    out_a, w_a = scaled_dot_product_attention(ones * 50, ones * 50, v)  # every score is 16 * 2500 / 4 = 1e4
    assert torch.isfinite(w_a).all() and torch.allclose(w_a, torch.full_like(w_a, 1 / 6), atol=1e-5), (
        "equal scores of 1e4 must give uniform weights, without overflow")

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_sdpa_padding_keys_get_zero_weight(scaled_dot_product_attention):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(4)
    q = torch.randn(3, 5, 8, generator=gen)
    k = torch.randn(3, 5, 8, generator=gen)
    v = torch.randn(3, 5, 8, generator=gen)
    keep = torch.tensor([[True, True, True, True, True], [False, False, True, True, True], [True, True, False, True, False]])
    out, w = scaled_dot_product_attention(q, k, v, keep[:, None, :])
    assert torch.all(w.masked_select(~keep[:, None, :].expand(3, 5, 5)) == 0), (
        "keys where the mask is False must get exactly zero weight (True = may attend, False = ignore)")
    assert torch.allclose(w.sum(-1), torch.ones(3, 5), atol=1e-5), "rows must still sum to 1 over the kept keys"
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, :])
    assert torch.allclose(out, expected, atol=1e-5), "masked output differs from torch's scaled_dot_product_attention"
    out_b, _ = scaled_dot_product_attention(q[1:2], k[1:2, 2:], v[1:2, 2:])
    assert torch.allclose(out[1:2], out_b, atol=1e-5), "masking keys must give the same result as removing them"
    q.requires_grad_()
    k.requires_grad_()
    q_ref, k_ref = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    out, _ = scaled_dot_product_attention(q, k, v, keep[:, None, :])
    assert out.requires_grad, "with a mask, the output must stay differentiable in q and k (no .detach() or no_grad)"
    out.sum().backward()
    F.scaled_dot_product_attention(q_ref, k_ref, v, attn_mask=keep[:, None, :]).sum().backward()
    assert q.grad is not None and torch.allclose(q.grad, q_ref.grad, atol=1e-4) and torch.allclose(k.grad, k_ref.grad, atol=1e-4), (
        "with a mask, the gradients with respect to q and k differ from torch's: the masked scores must stay differentiable")
    q, k = q.detach(), k.detach()
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    out_c, w_c = scaled_dot_product_attention(q, k, v, causal)
    assert torch.all(w_c.triu(1) == 0), "a (t_q, t_k) mask must broadcast over the batch"
    assert torch.allclose(out_c, F.scaled_dot_product_attention(q, k, v, attn_mask=causal), atol=1e-5), "wrong result with a 2-d mask"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ### Why scale? An experiment (not graded)
#
# Random queries and keys with unit-variance entries, for growing dimension $d$: the mean of the largest attention weight
# in each row (1 = all attention on one key, $1/t$ = uniform), and the size of the gradient that flows back through the
# softmax to the scores. Without scaling, the softmax saturates as $d$ grows and the gradient collapses; with the
# $\sqrt{d}$ scaling both stay put.

# %% tags=["otter_ignore"]
def softmax_statistics(dim, scaled, t=16, n=256, seed=0):
    """Mean largest attention weight per row and mean gradient norm (w.r.t. the scores) for random q, k."""
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(n, t, dim, generator=gen), torch.randn(n, t, dim, generator=gen)
    scores = (q @ k.transpose(-2, -1) / (math.sqrt(dim) if scaled else 1.0)).requires_grad_()
    probs = scores.softmax(-1)
    upstream = torch.randn(probs.shape, generator=gen)  # a random loss gradient arriving at the attention weights
    (probs * upstream).sum().backward()
    return probs.max(-1).values.mean().item(), scores.grad.norm(dim=-1).mean().item()


dims = [1, 4, 16, 64, 256, 1024]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for scaled, style in [(False, "r-o"), (True, "b-o")]:
    stats = [softmax_statistics(d, scaled) for d in dims]
    label = "scores / sqrt(d)" if scaled else "raw dot products"
    axes[0].plot(dims, [s[0] for s in stats], style, label=label)
    axes[1].plot(dims, [s[1] for s in stats], style, label=label)
axes[0].set(xscale="log", xlabel="dimension d", ylabel="mean largest weight", title="softmax saturation (t = 16)")
axes[1].set(xscale="log", yscale="log", xlabel="dimension d", ylabel="gradient norm", title="gradient through the softmax")
for ax in axes:
    ax.grid(True)
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# **Written answer `w1_softmax_saturation` (2 points, graded by the course staff).** In two or three sentences: what does the plot show, and why does it matter for training?
#
# Write your answer in the cell below. The export cell puts it into `a3_self_attention_written_answers.md` inside your
# submission zip; save the notebook before exporting.

# %% [markdown] tags=["written_answer"] written_answer={"name": "w1_softmax_saturation", "points": 2}
# _Type your answer here, replacing this text._

# %% [markdown] tags=["rubric"]
# 1 point: without scaling the dot products grow with k (their variance is proportional to k), so the softmax saturates: the largest weight tends to 1 and the gradient through the softmax shrinks as k grows. 1 point: dividing by sqrt(k) keeps the scores' variance near 1, so the weights stay spread and gradients usable at any k: that is why the scaled version trains.

# %% [markdown]
# ## 3. Standard self-attention with learned queries, keys and values
#
# Simple self-attention can only relate tokens whose embeddings are similar. The lecture adds three learned affine maps,
# the same for every token:
# $$k_i = K x_i + b_k, \qquad q_i = Q x_i + b_q, \qquad v_i = V x_i + b_v,$$
# then applies scaled dot-product attention to them. In code each map is an `nn.Linear(dim, dim)` **with a bias**,
# applied to all tokens at once (it acts on the last axis of `(batch, t, dim)`).
#
# Keep the attribute names `self.query`, `self.key`, `self.value`: the checks set and read the weights by these names.
# `forward(x, mask=None)` returns `(y, weights)` like your `scaled_dot_product_attention`, which you should call, and
# passes the mask on. Gradients must reach all three maps, weights and biases.
#
# **Example** (the check below): `SelfAttention(8)` has three `nn.Linear` maps `query`, `key` and `value`; for
# an input of shape `(2, 5, 8)` it returns `y` of shape `(2, 5, 8)` and weights of shape `(2, 5, 5)`.
#
# **(4 points: 1 public, 3 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q3_self_attention_module
# points: 4

# %%
class SelfAttention(nn.Module):
    """Single-head self-attention with learned query, key and value maps (with biases)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.query = nn.Linear(dim, dim)  # SOLUTION
        self.key = nn.Linear(dim, dim)  # SOLUTION
        self.value = nn.Linear(dim, dim)  # SOLUTION

    def forward(self, x, mask=None):
        """x: (batch, t, dim); mask: None or bool, broadcastable to (batch, t, t), True = may attend.
        Returns y (batch, t, dim) and weights (batch, t, t)."""
        # BEGIN SOLUTION
        return scaled_dot_product_attention(self.query(x), self.key(x), self.value(x), mask)
        # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_module_shapes_and_names(SelfAttention):
    assert SelfAttention is not None, "SelfAttention is not defined: run the cell that defines it (section 3) first"
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    layer = SelfAttention(8)
    for name in ("query", "key", "value"):
        part = getattr(layer, name, None)
        assert isinstance(part, nn.Linear), f"self.{name} must be an nn.Linear, got {type(part).__name__}"
    result = layer(torch.randn(2, 5, 8))
    assert result is not None, "forward returned None: fill in the stub."
    y, w = result
    assert tuple(y.shape) == (2, 5, 8) and tuple(w.shape) == (2, 5, 5), (
        f"expected y (2, 5, 8) and weights (2, 5, 5), got {tuple(y.shape)} and {tuple(w.shape)}")

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_module_has_biases(SelfAttention):
    import torch
    import torch.nn as nn
    layer = SelfAttention(6)
    for name in ("query", "key", "value"):
        part = getattr(layer, name)
        assert tuple(part.weight.shape) == (6, 6), f"self.{name} must map dim -> dim"
        assert part.bias is not None and tuple(part.bias.shape) == (6,), f"self.{name} needs a bias (k_i = K x_i + b_k)"
    assert sum(p.numel() for p in layer.parameters()) == 3 * (36 + 6), "the layer should have exactly K, Q, V and their biases"
    y, w = layer(torch.randn(1, 1, 6))  # a batch of one sequence of one token
    assert tuple(y.shape) == (1, 1, 6) and tuple(w.shape) == (1, 1, 1), (
        f"one sequence of one token: expected y (1, 1, 6) and weights (1, 1, 1), got {tuple(y.shape)} and {tuple(w.shape)}")

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_module_matches_manual_computation(SelfAttention):
    import torch
    import torch.nn as nn
    import math
    torch.manual_seed(5)
    layer = SelfAttention(12)
    with torch.no_grad():
        for name in ("query", "key", "value"):
            getattr(layer, name).bias.normal_()  # non-zero biases, so that they matter
        x = torch.randn(3, 7, 12)
        keep = torch.ones(3, 7, dtype=torch.bool)
        keep[1, :3] = False
        Q = x @ layer.query.weight.T + layer.query.bias
        K = x @ layer.key.weight.T + layer.key.bias
        V = x @ layer.value.weight.T + layer.value.bias
        scores = Q @ K.transpose(1, 2) / math.sqrt(12)
        w_expected = torch.softmax(scores, dim=-1)
        y, w = layer(x)
        assert torch.allclose(w, w_expected, atol=1e-5), (
            "weights must be softmax(q_i · k_j / sqrt(dim)) over j, with q = Q x + b_q (self.query) and k = K x + b_k (self.key)")
        assert torch.allclose(y, w_expected @ V, atol=1e-5), "output must mix the values v_j = V x_j + b_v (self.value)"
        y_m, w_m = layer(x, keep[:, None, :])
        w_masked = torch.softmax(scores.masked_fill(~keep[:, None, :], float("-inf")), dim=-1)
        assert torch.all(w_m[1, :, :3] == 0), "forward must pass the mask on: masked keys must get zero weight"
        assert torch.allclose(y_m, w_masked @ V, atol=1e-5), "wrong output with a padding mask"
    # every parameter learns: the gradients of a loss on y and the weights are those of the formula
    mine = {name: getattr(layer, name) for name in ("query", "key", "value")}
    ref = {name: (part.weight.detach().clone().requires_grad_(), part.bias.detach().clone().requires_grad_())
           for name, part in mine.items()}
    Q, K, V = (x @ ref[name][0].T + ref[name][1] for name in ("query", "key", "value"))
    w_ref = torch.softmax((Q @ K.transpose(1, 2) / math.sqrt(12)).masked_fill(~keep[:, None, :], float("-inf")), dim=-1)
    y_m, w_m = layer(x, keep[:, None, :])
    g_y, g_w = torch.randn(y_m.shape), torch.randn(w_m.shape)
    ((y_m * g_y).sum() + (w_m * g_w).sum()).backward()
    ((w_ref @ V * g_y).sum() + (w_ref * g_w).sum()).backward()
    for name in ("query", "key", "value"):
        for kind, mine_p, ref_p in (("weight", mine[name].weight, ref[name][0]), ("bias", mine[name].bias, ref[name][1])):
            grad = mine_p.grad
            assert grad is not None and torch.allclose(grad, ref_p.grad, atol=1e-4), (
                f"a map of the layer gets the wrong gradient (self.{name}.{kind}): every map must take part in the computation, "
                "nothing detached")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 4. A sentiment model with one self-attention layer
#
# Reviews become token ids with the course vocabulary (10,000 words; index 0 is both padding and unknown word), cut
# to their first 128 tokens and padded at the end (the course's convention, section 2). The model:
#
# 1. `self.embedding`: `nn.Embedding(vocab_size, dim, padding_idx=0)`,
# 2. `self.attention`: your `SelfAttention(dim)`, called with a mask so that no token attends to index 0,
# 3. a **masked mean** over the tokens whose id is not 0 (padding must not dilute the average),
# 4. `self.classifier`: `nn.Linear(dim, 1)`, giving **one logit per review**, shape `(batch,)`.
#
# Index 0 also stands for unknown words, so they are ignored too; that is fine here. Every review has at least one
# word that is not 0 (a row of padding only would leave the attention of part 2 without a key). Padding must not change
# the prediction: a review gives the same logit whether it is padded to 20 or 256 tokens, and a review of one word gets
# `classifier` of that word's attention output. Keep everything differentiable: training must reach the embeddings,
# the three maps of the attention layer and the classifier.
#
# **Example** (the check below): `AttentionClassifier(50, 8)` maps ids of shape `(4, 10)` to logits of shape `(4,)`.
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q4_attention_classifier
# points: 3

# %%
class AttentionClassifier(nn.Module):
    def __init__(self, vocab_size, dim=32):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.attention = SelfAttention(dim)
        self.classifier = nn.Linear(dim, 1)

    def forward(self, ids):
        """ids: (batch, t) int64 token ids, 0 = padding. Returns logits of shape (batch,)."""
        # BEGIN SOLUTION
        keep = ids != 0
        y, _ = self.attention(self.embedding(ids), keep[:, None, :])
        counts = keep.sum(dim=1, keepdim=True).clamp(min=1)
        pooled = (y * keep.unsqueeze(-1)).sum(dim=1) / counts
        return self.classifier(pooled).squeeze(-1)
        # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_classifier_shape(AttentionClassifier):
    assert AttentionClassifier is not None, "AttentionClassifier is not defined: run the cell that defines it (section 4) first"
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    model = AttentionClassifier(50, 8)
    out = model(torch.randint(1, 50, (4, 10)))
    assert out is not None, "forward returned None: fill in the stub."
    assert tuple(out.shape) == (4,), f"expected one logit per review, shape (4,), got {tuple(out.shape)}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_classifier_ignores_padding(AttentionClassifier):
    import torch
    import torch.nn as nn
    torch.manual_seed(1)
    model = AttentionClassifier(40, 8).eval()
    with torch.no_grad():
        model.embedding.weight[0].normal_()  # even a non-zero padding vector must not matter
        ids = torch.randint(1, 40, (3, 6))
        base = model(ids)
        front = model(torch.cat([torch.zeros(3, 5, dtype=torch.long), ids], dim=1))
        back = model(torch.cat([ids, torch.zeros(3, 9, dtype=torch.long)], dim=1))
        assert torch.isfinite(front).all(), "padding produced NaN"
        assert torch.allclose(front, base, atol=1e-5) and torch.allclose(back, base, atol=1e-5), (
            "padding (id 0) changed the logits: mask it in the attention and leave it out of the mean")
        emb = model.embedding(ids)
        y, _ = model.attention(emb)
        expected = model.classifier(y.mean(dim=1)).squeeze(-1)
        assert torch.allclose(base, expected, atol=1e-5), (
            "without padding the logit must be classifier(mean over tokens of attention(embedding(ids)))")
        one_word = model(torch.tensor([[0, 0, 0, 7]]))
        assert tuple(one_word.shape) == (1,), f"a batch of one review must give shape (1,), got {tuple(one_word.shape)}"
        y_word, _ = model.attention(model.embedding(torch.tensor([[7]])))
        assert torch.allclose(one_word, model.classifier(y_word[:, 0]).squeeze(-1), atol=1e-5), (
            "a review with a single real word, padded, must get classifier(attention output of that word): "
            "the mean of one vector is that vector")
    # everything learns: a loss on the logits reaches the embeddings of the real words, Q, K, V and the classifier
    padded = torch.cat([torch.zeros(3, 4, dtype=torch.long), ids], dim=1)
    model(padded).sum().backward()
    table = model.embedding.weight.grad
    assert table is not None and (table[ids.unique()].abs().sum(-1) > 0).all(), (
        "the embeddings of the review's words get no gradient: nothing between them and the logit may be detached")
    for name in ("query", "key", "value"):
        grad = getattr(model.attention, name).weight.grad
        assert grad is not None and grad.abs().sum() > 0, (
            f"a map of the attention layer gets no gradient (attention.{name}): call the attention layer outside "
            "torch.no_grad and do not detach it")
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0, "the classifier gets no gradient"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ### Train it on IMDB (not graded)
#
# The same data as before (training reviews shuffled with seed 42, the first 10,000 held out for validation), but only
# 8,000 training and 2,000 validation reviews, each cut to its first 128 tokens, so that two epochs take about a minute on a
# CPU (`max_seconds` stops after the epoch that passes 60 s). Expect a validation accuracy of roughly 0.80–0.87. Nothing
# here is graded: the point is to look at the attention weights below. (128 tokens are a fraction of a long review,
# and reviewers tend to state their verdict at the end: the last 128 tokens give this model about 85% test accuracy,
# the first 128 about 82%. Assignment 5 reads up to 512 tokens, which keeps 92% of the reviews whole.)

# %% tags=["otter_ignore"]
MAX_LEN = 128  # the first 128 tokens of each review, padded at the end (the course's convention, assignment 3)
N_TRAIN, N_VAL = 8_000, 2_000  # a subset, so that training takes about a minute on a CPU
splits = data.imdb_splits()
train_texts, train_labels = splits["train"]
val_texts, val_labels = splits["val"]
vocab = text.Vocabulary.from_texts(train_texts + val_texts, 10_000)


def id_loader(texts, labels, shuffle, batch_size=64):
    return text.padded_loader(text.encode_texts(texts, vocab, progress=True), labels, MAX_LEN, shuffle, batch_size,
                              padding="post", truncating="post")


train_loader = id_loader(train_texts[:N_TRAIN], train_labels[:N_TRAIN], True)
val_loader = id_loader(val_texts[:N_VAL], val_labels[:N_VAL], False, batch_size=256)

# %% tags=["otter_ignore"]
training.seed_everything(42)
model = AttentionClassifier(len(vocab), dim=32)
with torch.no_grad():
    model.embedding.weight.normal_(0, 0.1)  # small embeddings: the softmax starts out unsaturated
    model.embedding.weight[0].zero_()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
history = training.fit(model, train_loader, val_loader, optimizer, epochs=2, title="self-attention classifier", max_seconds=60)
plotting.plot_history(history, "self-attention classifier");

# %% [markdown]
# ### What does the attention layer do with "not" and "terrible"? (not graded)
#
# Row $i$ of the heatmap is the attention vector of token $i$: how much of each other token's value it mixes in. Look at
# the rows and columns of "not" and "terrible", and compare the predictions for the sentence, a shuffled version and
# "the restaurant is terrible".

# %% tags=["otter_ignore"]
model.eval().cpu()
sentence = "the restaurant is not too terrible"
ids = torch.tensor([vocab.encode(sentence)])
with torch.no_grad():
    _, weights = model.attention(model.embedding(ids))
plotting.heatmap(weights[0], sentence.split(), sentence.split(), title="attention weights (row attends to column)")
plt.show()
for s in [sentence, "terrible too not is restaurant the", "the restaurant is terrible", "the restaurant is wonderful"]:
    with torch.no_grad():
        logit = model(torch.tensor([vocab.encode(s)])).item()
    print(f"P(positive) {torch.sigmoid(torch.tensor(logit)).item():.3f}  (logit {logit:+6.2f})  {s}")

# %% [markdown]
# Self-attention followed by a mean is **permutation invariant**: the shuffled sentence gets exactly the same
# prediction. Attention lets "not" and "terrible" influence each other, but nothing tells the model that "not" comes
# *right before* "terrible". Assignment 5 adds positions.

# %% [markdown]
# **Written answer `w2_not_terrible` (2 points, graded by the course staff).** In two or three sentences: what do the rows of "not" and "terrible" show in your heatmap?
#
# Write your answer in the cell below. The export cell puts it into `a3_self_attention_written_answers.md` inside your
# submission zip; save the notebook before exporting.

# %% [markdown] tags=["written_answer"] written_answer={"name": "w2_not_terrible", "points": 2}
# _Type your answer here, replacing this text._

# %% [markdown] tags=["rubric"]
# 1 point: reads rows as queries and describes their own heatmap: where "not" and "terrible" put their weight (each other, themselves, "restaurant"...). 1 point: notes that these weights carry no order: the shuffled sentence gets the same prediction because attention followed by a mean is permutation invariant (positions come in assignment 5). Any heatmap is acceptable if described correctly.
