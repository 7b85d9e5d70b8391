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
# name: a4_multihead
# init_cell: true
# check_all_cell: false
# strip_solutions_from_all_cells: true
# export_cell:
#   pdf: false
#   run_tests: false
#   instructions: "Save the notebook first (Ctrl+S), then run this cell when you are done; submit the zip it creates (it contains your notebook and your written answers (a4_multihead_written_answers.md)). On Gradescope you see a submission check and the public checks at once, and the hidden tests when the course staff publish them."
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
# # Assignment 4 — Multi-head self-attention
#
# One self-attention layer has one set of query, key and value maps, so it can model one kind of relation between
# tokens at a time. "terrible" may need to look at "not" (negation) *and* at "restaurant" (what is terrible). The
# lecture's answer is **multi-head** self-attention: project the $d$-dimensional tokens to queries, keys and values,
# cut each of them into $h$ slices of size $d/h$ (the **heads**), run scaled dot-product attention in every head
# independently and in parallel, glue the $h$ outputs back together and mix them with one more linear map (the
# **output projection**). It costs about as much as a single head of width $d$.
#
# 1. `split_heads`: `(batch, t, d)` → `(batch, h, t, d/h)`,
# 2. `merge_heads`: the inverse, `(batch, h, t, d/h)` → `(batch, t, d)`,
# 3. `MultiHeadSelfAttention`: projections, all heads at once (no Python loop over heads), output projection, padding
#    mask. The hidden tests check it against PyTorch's own `nn.MultiheadAttention`.
# 4. a look at what the heads of a small trained sentiment model attend to (not graded).
#
# **Notation.** As in assignment 3, code is batch-first: the lecture's matrix $X$ (tokens as columns) is a tensor
# `x` of shape `(batch, t, d)` (tokens as rows), $X^T X$ is `x @ x.transpose(-2, -1)` and the softmax runs over the last
# axis. Head $j$ ($0 \le j < h$) owns features `j * d_head : (j + 1) * d_head` of the queries, keys and values, with
# `d_head = d // h`.
#
# This notebook stands on its own: you write attention again inside `forward` (reuse your assignment 3 code if you like,
# by pasting it into this notebook). Hidden tests run your code on fresh inputs when you submit; cells marked *not
# graded* are skipped by the autograder.
#
# **Time.** Training the small model of section 4 takes about a minute on a laptop CPU (not graded).

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
# ## 1. Splitting into heads
#
# A tensor `x` of shape `(batch, t, d)` holds, for every token, the features of all heads side by side: head 0 first,
# then head 1, and so on. `split_heads(x, num_heads)` must return a tensor of shape `(batch, num_heads, t, d_head)` with
# `out[b, j, i] == x[b, i, j * d_head : (j + 1) * d_head]`, so that every head becomes a separate batch of sequences that
# matrix products can process in parallel.
#
# **Careful**: `x.view(batch, num_heads, t, d_head)` has the right *shape* but the wrong content: it cuts the flat
# memory of each sequence into blocks of whole tokens, mixing features of different tokens. First expose the heads
# along the feature axis, `(batch, t, num_heads, d_head)`, then move the head axis forward.
#
# **Example** (the check below): for `x = torch.arange(12.).view(1, 3, 4)` (3 tokens of 4 features) and 2 heads,
# `split_heads(x, 2)` has shape `(1, 2, 3, 2)`: head 0 is `[[0, 1], [4, 5], [8, 9]]` and head 1 is
# `[[2, 3], [6, 7], [10, 11]]`.
#
# **(2 points: 1 public, 1 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q1_split_heads
# points: 2

# %%
def split_heads(x, num_heads):
    """(batch, t, d) -> (batch, num_heads, t, d // num_heads); head j gets features j*d_head:(j+1)*d_head."""
    # BEGIN SOLUTION
    batch, t, d = x.shape
    return x.view(batch, t, num_heads, d // num_heads).transpose(1, 2)
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_split_small_example(split_heads):
    assert split_heads is not None, "split_heads is not defined: run the cell that defines it (section 1) first"
    import torch
    import torch.nn as nn
    x = torch.arange(12.0).view(1, 3, 4)  # 3 tokens with 4 features each
    out = split_heads(x, 2)
    assert out is not None, "split_heads returned None: fill in the stub."
    assert tuple(out.shape) == (1, 2, 3, 2), f"expected shape (1, 2, 3, 2), got {tuple(out.shape)}"
    expected = torch.tensor([[[[0.0, 1.0], [4.0, 5.0], [8.0, 9.0]], [[2.0, 3.0], [6.0, 7.0], [10.0, 11.0]]]])
    assert torch.equal(out, expected), f"head 0 must hold features 0:2 of every token, head 1 features 2:4; got {out.tolist()}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_split_random_shapes(split_heads):
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(0)
    for batch, t, heads, d_head in [(2, 5, 4, 3), (3, 1, 1, 8), (1, 7, 8, 2)]:
        x = torch.randn(batch, t, heads * d_head, generator=gen)
        out = split_heads(x, heads)
        assert tuple(out.shape) == (batch, heads, t, d_head), f"expected {(batch, heads, t, d_head)}, got {tuple(out.shape)}"
        for j in range(heads):
            assert torch.equal(out[:, j], x[:, :, j * d_head:(j + 1) * d_head]), (
                f"head {j} must be features {j * d_head}:{(j + 1) * d_head} of every token (view(b, t, h, d) then transpose)")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 2. Merging the heads
#
# After attention, each head has produced `(batch, t, d_head)` values: `merge_heads` is the exact inverse of
# `split_heads` and concatenates the heads' features of each token, head 0 first: `(batch, h, t, d_head)` →
# `(batch, t, h * d_head)`. After a `transpose` the tensor is no longer contiguous in memory, so `view` will complain:
# use `reshape` or call `.contiguous()` first.
#
# **Example** (the check below): `merge_heads` of the output of the `split_heads` example above gives back
# `torch.arange(12.).view(1, 3, 4)`, shape `(1, 3, 4)`.
#
# **(2 points: 1 public, 1 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q2_merge_heads
# points: 2

# %%
def merge_heads(x):
    """(batch, h, t, d_head) -> (batch, t, h * d_head), concatenating the heads of each token (head 0 first)."""
    # BEGIN SOLUTION
    batch, heads, t, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, t, heads * d_head)
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_merge_small_example(merge_heads):
    assert merge_heads is not None, "merge_heads is not defined: run the cell that defines it (section 2) first"
    import torch
    import torch.nn as nn
    x = torch.tensor([[[[0.0, 1.0], [4.0, 5.0], [8.0, 9.0]], [[2.0, 3.0], [6.0, 7.0], [10.0, 11.0]]]])
    out = merge_heads(x)
    assert out is not None, "merge_heads returned None: fill in the stub."
    assert tuple(out.shape) == (1, 3, 4), f"expected shape (1, 3, 4), got {tuple(out.shape)}"
    assert torch.equal(out, torch.arange(12.0).view(1, 3, 4)), f"token i must be [head 0 features, head 1 features]; got {out.tolist()}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_merge_inverts_split(merge_heads):
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(1)
    for batch, heads, t, d_head in [(2, 4, 5, 3), (1, 1, 6, 4), (3, 8, 2, 2)]:
        x = torch.randn(batch, t, heads * d_head, generator=gen)
        split = x.view(batch, t, heads, d_head).transpose(1, 2)
        out = merge_heads(split)
        assert tuple(out.shape) == (batch, t, heads * d_head), f"expected {(batch, t, heads * d_head)}, got {tuple(out.shape)}"
        assert torch.equal(out, x), "merge_heads must undo split_heads exactly (transpose back, then reshape)"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# Your `split_heads` and `merge_heads` as a picture (not graded; it appears once they pass their checks): 4 tokens of
# 8 numbered features, 2 heads. Each head receives the same 4 tokens with its own slice of 4 features, and merging puts
# them back side by side, head 0 first: the last panel must equal the first.

# %% tags=["otter_ignore"]
plotting.heads_figure(split_heads, merge_heads, t=4, d=8, num_heads=2)
plt.show()

# %% [markdown]
# ## 3. The multi-head self-attention layer
#
# For input `x` of shape `(batch, t, d)` and `h` heads of size `d_head = d // h`:
#
# 1. queries, keys and values $q_i = Q x_i + b_q$, $k_i = K x_i + b_k$, $v_i = V x_i + b_v$, each `(batch, t, d)`;
# 2. `split_heads` on each: `(batch, h, t, d_head)`;
# 3. scaled dot-product attention in all heads at once: scores `(batch, h, t, t)` divided by $\sqrt{d_\text{head}}$
#    (the dimension of the dot products *inside a head*, not $d$), softmax over the keys (last axis), times the values;
# 4. `merge_heads`: `(batch, t, d)`;
# 5. the output projection `self.out = nn.Linear(d, d)`, which lets the heads' results mix.
#
# **Parameters.** Either one fused `self.qkv = nn.Linear(d, 3 * d)` whose output is `[q, k, v]` in that order (one
# matrix product instead of three; `q, k, v = self.qkv(x).chunk(3, dim=-1)`), or three `nn.Linear(d, d)` named
# `self.query`, `self.key`, `self.value`. All with biases. Keep the name `self.out` for the output projection. The hidden
# tests copy the weights of a `torch.nn.MultiheadAttention` into your layer through these names.
#
# **Padding mask** (the course's convention of assignment 3, section 2). `mask` is `None` or a bool tensor of shape
# `(batch, t)`: **`True` marks a real token, `False` a
# padding token** that no query may attend to (its weight must be exactly 0). This is the polarity of assignment 3 and of
# `F.scaled_dot_product_attention`. Beware: `nn.MultiheadAttention`'s `key_padding_mask` uses the **opposite** polarity
# (True = ignore), so our `mask` corresponds to its `key_padding_mask=~mask`. To broadcast over heads and queries, give
# the mask the shape `(batch, 1, 1, t)`.
#
# `forward` returns `(y, weights)`: `y` of shape `(batch, t, d)` and the attention weights of every head, `(batch, h, t, t)`.
# Do not loop over the heads in Python: batched matrix products (`@`, `torch.matmul`, `einsum`) handle the head axis.
# It must work for any batch size and sequence length (a batch of one, a single token) and stay differentiable: the
# hidden tests compare your outputs, weights and **gradients** (of the input and of every projection) with those of
# `nn.MultiheadAttention`, so nothing may be detached or computed under `torch.no_grad()`.
#
# **Example** (the check below): `MultiHeadSelfAttention(16, 4)` maps an input of shape `(2, 5, 16)` to `y` of shape
# `(2, 5, 16)` and weights of shape `(2, 4, 5, 5)` (batch, heads, t, t).
#
# **(6 points: 1 public, 5 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q3_multihead_module
# points: 6

# %%
class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        assert dim % num_heads == 0, "the model dimension must be divisible by the number of heads"
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)  # SOLUTION
        self.out = nn.Linear(dim, dim)  # SOLUTION

    def forward(self, x, mask=None):
        """x: (batch, t, dim); mask: None or bool (batch, t), True = real token.
        Returns y (batch, t, dim) and weights (batch, num_heads, t, t)."""
        # BEGIN SOLUTION
        q, k, v = (split_heads(part, self.num_heads) for part in self.qkv(x).chunk(3, dim=-1))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return self.out(merge_heads(weights @ v)), weights
        # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_mhsa_shapes(MultiHeadSelfAttention):
    assert MultiHeadSelfAttention is not None, "MultiHeadSelfAttention is not defined: run the cell that defines it (section 3) first"
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    layer = MultiHeadSelfAttention(16, 4)
    assert isinstance(getattr(layer, "out", None), nn.Linear), "the output projection self.out must be an nn.Linear(dim, dim)"
    fused = isinstance(getattr(layer, "qkv", None), nn.Linear)
    separate = all(isinstance(getattr(layer, n, None), nn.Linear) for n in ("query", "key", "value"))
    assert fused or separate, "define self.qkv = nn.Linear(dim, 3 * dim), or self.query, self.key, self.value"
    result = layer(torch.randn(2, 5, 16))
    assert result is not None, "forward returned None: fill in the stub."
    y, w = result
    assert tuple(y.shape) == (2, 5, 16), f"y: expected (batch, t, dim) = (2, 5, 16), got {tuple(y.shape)}"
    assert tuple(w.shape) == (2, 4, 5, 5), f"weights: expected (batch, heads, t, t) = (2, 4, 5, 5), got {tuple(w.shape)}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_mhsa_matches_torch_multihead_attention(MultiHeadSelfAttention):
    import torch
    import torch.nn as nn
    # (dim, heads, seed, batch, t): a batch of one and a single token included
    for dim, heads, seed, batch, t in [(16, 4, 0, 3, 6), (12, 3, 1, 1, 1), (8, 1, 2, 2, 9), (12, 6, 3, 1, 5)]:
        torch.manual_seed(seed)
        ref = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
        with torch.no_grad():
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
        layer = MultiHeadSelfAttention(dim, heads).eval()
        fused = isinstance(getattr(layer, "qkv", None), nn.Linear)
        with torch.no_grad():
            if fused:
                layer.qkv.weight.copy_(ref.in_proj_weight)
                layer.qkv.bias.copy_(ref.in_proj_bias)
            else:
                for part, name in enumerate(("query", "key", "value")):
                    getattr(layer, name).weight.copy_(ref.in_proj_weight[part * dim:(part + 1) * dim])
                    getattr(layer, name).bias.copy_(ref.in_proj_bias[part * dim:(part + 1) * dim])
            layer.out.weight.copy_(ref.out_proj.weight)
            layer.out.bias.copy_(ref.out_proj.bias)
            x = torch.randn(batch, t, dim)
            y, w = layer(x)
            y_ref, w_ref = ref(x, x, x, need_weights=True, average_attn_weights=False)
            assert torch.allclose(y, y_ref, atol=1e-5), (
                f"dim {dim}, {heads} heads, input {(batch, t, dim)}: output differs from nn.MultiheadAttention with the "
                "same weights (check the head split, the scaling by sqrt(d_head), the softmax axis and the output projection)")
            assert torch.allclose(w, w_ref, atol=1e-5), f"dim {dim}, {heads} heads: per-head weights differ from nn.MultiheadAttention's"
        mask = torch.ones(batch, t, dtype=torch.bool)
        if t > 4:
            mask[0, :2] = False
            mask[-1, t - 1:] = False
        x.requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        y_m, w_m = layer(x, mask)
        y_mref, w_mref = ref(x_ref, x_ref, x_ref, key_padding_mask=~mask, need_weights=True, average_attn_weights=False)
        assert torch.allclose(y_m, y_mref, atol=1e-5), (
            "with a padding mask the output differs from nn.MultiheadAttention(key_padding_mask=~mask): "
            "our mask is True for real tokens, nn.MultiheadAttention's is True for padding")
        assert torch.all(w_m.detach()[~mask[:, None, None, :].expand_as(w_m)] == 0), "padding keys must get exactly zero weight"
        # training: the same gradients as nn.MultiheadAttention, for the input and for every parameter
        upstream = torch.randn(y_m.shape)
        (y_m * upstream).sum().backward()
        (y_mref * upstream).sum().backward()
        assert x.grad is not None and torch.allclose(x.grad, x_ref.grad, atol=1e-4), (
            "the gradient with respect to the input differs from nn.MultiheadAttention's: scores and weights must stay "
            "differentiable (no detach, no torch.no_grad)")
        pairs = [("out.weight", layer.out.weight.grad, ref.out_proj.weight.grad), ("out.bias", layer.out.bias.grad, ref.out_proj.bias.grad)]
        if fused:
            pairs += [("qkv.weight", layer.qkv.weight.grad, ref.in_proj_weight.grad), ("qkv.bias", layer.qkv.bias.grad, ref.in_proj_bias.grad)]
        else:
            for part, name in enumerate(("query", "key", "value")):
                rows = slice(part * dim, (part + 1) * dim)
                pairs += [(f"{name}.weight", getattr(layer, name).weight.grad, ref.in_proj_weight.grad[rows]),
                          (f"{name}.bias", getattr(layer, name).bias.grad, ref.in_proj_bias.grad[rows])]
        for name, grad, expected in pairs:
            assert grad is not None and torch.allclose(grad, expected, atol=1e-4), (
                f"the gradient of {name} differs from nn.MultiheadAttention's: every projection must take part")

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_mhsa_heads_are_independent(MultiHeadSelfAttention):
    import torch
    import torch.nn as nn
    dim, heads = 12, 3
    d_head = dim // heads
    torch.manual_seed(3)
    layer = MultiHeadSelfAttention(dim, heads).eval()
    x = torch.randn(2, 5, dim)
    with torch.no_grad():
        layer.out.weight.copy_(torch.eye(dim))  # an identity output projection shows the concatenated heads
        layer.out.bias.zero_()
        before, w_before = layer(x)
        q_weight = layer.qkv.weight[:dim] if isinstance(getattr(layer, "qkv", None), nn.Linear) else layer.query.weight
        q_weight[d_head:2 * d_head] += torch.randn(d_head, dim) * 3  # change only head 1's slice of the query map
        after, w_after = layer(x)
    changed = [not torch.allclose(after[..., j * d_head:(j + 1) * d_head], before[..., j * d_head:(j + 1) * d_head], atol=1e-6)
               for j in range(heads)]
    assert changed == [False, True, False], (
        f"changing head 1's queries changed the output slices of heads {[j for j in range(heads) if changed[j]]}; "
        "it must change exactly head 1's slice (split with view(b, t, h, d_head).transpose(1, 2), merge back the same way)")
    assert torch.allclose(w_after[:, [0, 2]], w_before[:, [0, 2]], atol=1e-6) and not torch.allclose(w_after[:, 1], w_before[:, 1]), (
        "changing head 1's queries must change head 1's attention weights only")

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_mhsa_one_head_is_scaled_dot_product_attention(MultiHeadSelfAttention):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.manual_seed(4)
    dim = 10
    layer = MultiHeadSelfAttention(dim, 1).eval()
    x = torch.randn(3, 7, dim)
    with torch.no_grad():
        if isinstance(getattr(layer, "qkv", None), nn.Linear):
            q, k, v = layer.qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = layer.query(x), layer.key(x), layer.value(x)
        expected = layer.out(F.scaled_dot_product_attention(q, k, v))
        y, w = layer(x)
    assert tuple(w.shape) == (3, 1, 7, 7), f"weights of one head: expected (3, 1, 7, 7), got {tuple(w.shape)}"
    assert torch.allclose(y, expected, atol=1e-5), "with one head the layer must be out(scaled_dot_product_attention(q, k, v))"
    assert torch.allclose(w.sum(-1), torch.ones(3, 1, 7), atol=1e-5), "each row of the weights must sum to 1 (softmax over keys)"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_mhsa_batch_first_and_permutation_equivariant(MultiHeadSelfAttention):
    import torch
    import torch.nn as nn
    torch.manual_seed(5)
    layer = MultiHeadSelfAttention(8, 2).eval()
    x = torch.randn(4, 9, 8) * 3  # larger inputs: any missing or wrong scaling shows
    perm = torch.randperm(9)
    with torch.no_grad():
        y, w = layer(x)
        y_p, _ = layer(x[:, perm])
        y_1, _ = layer(x[1:2])
        y_short, _ = layer(x[:, :4])
    assert tuple(y.shape) == (4, 9, 8) and tuple(w.shape) == (4, 2, 9, 9), "shapes must be (batch, t, dim) and (batch, h, t, t)"
    assert torch.allclose(y_1, y[1:2], atol=1e-5), "inputs are batch-first: each sequence must be processed independently"
    assert tuple(y_short.shape) == (4, 4, 8), "the layer must work for any sequence length"
    assert torch.allclose(y_p, y[:, perm], atol=1e-5), "without positions, permuting the tokens must permute the outputs"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 4. What do the heads look at? (not graded)
#
# A small sentiment model with your layer: embedding (dimension 32) → multi-head self-attention (4 heads of size 8) →
# masked mean over the real tokens → one logit. As in assignment 3 it trains on 8,000 reviews cut to 128 tokens, for
# about a minute on a CPU, then we draw the attention of
# every head on "the restaurant is not too terrible". Different heads usually learn visibly different patterns; none of
# them can know word order (there are no positions yet: assignment 5).

# %% tags=["otter_ignore"]
class MultiHeadClassifier(nn.Module):
    def __init__(self, vocab_size, dim=32, num_heads=4):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.attention = MultiHeadSelfAttention(dim, num_heads)
        self.classifier = nn.Linear(dim, 1)

    def forward(self, ids):
        keep = ids != 0  # index 0: padding (and unknown words)
        y, _ = self.attention(self.embedding(ids), keep)
        pooled = (y * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return self.classifier(pooled).squeeze(-1)


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
model = MultiHeadClassifier(len(vocab))
with torch.no_grad():
    model.embedding.weight.normal_(0, 0.1)
    model.embedding.weight[0].zero_()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
history = training.fit(model, train_loader, val_loader, optimizer, epochs=2, title="multi-head classifier", max_seconds=60)
plotting.plot_history(history, "multi-head classifier");

# %% tags=["otter_ignore"]
model.eval().cpu()
sentence = "the restaurant is not too terrible"
words = sentence.split()
with torch.no_grad():
    _, weights = model.attention(model.embedding(torch.tensor([vocab.encode(sentence)])))
fig, axes = plt.subplots(1, weights.shape[1], figsize=(5 * weights.shape[1], 4.5))
for head, ax in enumerate(axes):
    plotting.heatmap(weights[0, head], words, words, title=f"head {head}", ax=ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Written answer `w1_heads` (2 points, graded by the course staff).** In two or three sentences: do the heads attend differently? Which head, if any, links "not" and "terrible"?
#
# Write your answer in the cell below. The export cell puts it into `a4_multihead_written_answers.md` inside your
# submission zip; save the notebook before exporting.

# %% [markdown] tags=["written_answer"] written_answer={"name": "w1_heads", "points": 2}
# _Type your answer here, replacing this text._

# %% [markdown] tags=["rubric"]
# 1 point: compares the heads from their own heatmaps (different heads weight different words, or they look alike, with a plausible reason such as few training steps or the small width per head). 1 point: says which head, if any, puts weight between "not" and "terrible", supported by what the heatmap shows. Any outcome is acceptable if read correctly from the figure.
