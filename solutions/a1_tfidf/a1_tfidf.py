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
# name: a1_tfidf
# init_cell: true
# check_all_cell: false
# strip_solutions_from_all_cells: true
# export_cell:
#   pdf: false
#   run_tests: false
#   files:
#     - a1_weights.safetensors
#   instructions: "Save the notebook first (Ctrl+S), then run this cell after training; submit the zip it creates (it contains your notebook, a1_weights.safetensors and your written answers (a1_tfidf_written_answers.md)). On Gradescope you see a submission check and the public checks at once, and the hidden tests when the course staff publish them; your model's test accuracy appears on the course's leaderboard if the course uses one."
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
# # Assignment 1 — A bag-of-words classifier with TF-IDF
#
# *Transformers: maybe attention is all you need* starts from the simplest text model there is: forget the order of the
# words and describe a review by **which** words it contains. In this assignment you build that pipeline yourself and
# train a small neural network on the 50,000 IMDB movie reviews.
#
# 1. a **vocabulary** of the most frequent words (index 0 is reserved for unknown words),
# 2. **multi-hot** vectors: 1 where a word occurs in a review, 0 elsewhere,
# 3. **TF-IDF** weighting: $t_i \cdot \log\frac{N}{|\{d \in D : t_i \in d\}|}$, so rare, specific words count more,
# 4. **L2 normalisation** of each review's vector,
# 5. the lecture's **10000-16-16-1 MLP** with ReLU and dropout 0.5, trained on IMDB,
# 6. a short question on why "the restaurant is not too terrible" fools a bag of words.
#
# Each step has a stub to fill in and a public check (`grader.check(...)`) that gives instant feedback. Hidden tests run
# the same functions on fresh inputs when you submit, and evaluate the weights you export on the 25,000 test reviews.
#
# **How to work**: fill in every `...`, run the check under it, then train and run the export cell at the end. Cells
# marked *not graded* (data loading, training, plots) are skipped by the autograder: it never retrains your model.
#
# **Time and target.** Training takes 10–30 s on a laptop CPU; a correct solution reaches 87.5–88.5% test accuracy
# (86% passes).

# %% tags=["otter_ignore"]
# Setup: make release writes the course's install-and-check lines here (autograder/config.py).

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn

from course import data, text, training, plotting

training.seed_everything(42)
DEVICE = training.get_device()
CPU_TRAINING = "10–30 s"  # this notebook's training on a laptop CPU
print(training.device_report(CPU_TRAINING))

# %%
import math
from collections import Counter

import numpy as np
import torch
import torch.nn as nn

VOCAB_SIZE = 10_000  # index 0 (unknown) + the 9,999 most frequent words

# %% [markdown]
# ## 1. The vocabulary
#
# A review becomes a list of tokens with `course.text.tokenize` (lower-case words, HTML line breaks removed). The
# vocabulary maps the `size - 1` most frequent words of the training reviews to the indices `1 … size-1`, most frequent
# first. **Index 0 is reserved** for every word outside the vocabulary, so it is never given to a word.
#
# "Frequent" means the total number of occurrences over all reviews. Ties are broken alphabetically so that the
# vocabulary never depends on the order of the reviews.
#
# **Example** (the check below): `build_vocabulary([["b", "a", "b"], ["c", "a", "b"], ["d"]], 3)` returns
# `{"b": 1, "a": 2}`: "b" occurs 3 times, "a" twice, and only `3 - 1 = 2` words fit next to index 0.
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q1_vocabulary
# points: 3

# %%
def build_vocabulary(token_lists, size):
    """Map the `size - 1` most frequent tokens to 1, 2, ..., most frequent first (ties: alphabetical).

    token_lists: a list of token lists, e.g. [["a", "good", "film"], ["a", "bad", "one"]].
    Returns a dict {word: index}; index 0 is reserved for unknown words and must not appear.
    """
    # BEGIN SOLUTION
    counts = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: size - 1]
    return {word: index for index, (word, _) in enumerate(ranked, start=1)}
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_vocabulary_small_example(build_vocabulary):
    assert build_vocabulary is not None, "build_vocabulary is not defined: run the cell that defines it (section 1) first"
    import torch
    import torch.nn as nn
    docs = [["b", "a", "b"], ["c", "a", "b"], ["d"]]
    vocab = build_vocabulary(docs, 3)
    assert vocab is not None, "build_vocabulary returned None: fill in the stub."
    assert isinstance(vocab, dict), f"expected a dict, got {type(vocab).__name__}"
    assert vocab == {"b": 1, "a": 2}, f"for {docs} and size 3 expected {{'b': 1, 'a': 2}}, got {vocab}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_vocabulary_reserves_zero_and_size(build_vocabulary):
    import torch
    import torch.nn as nn
    import random
    rng = random.Random(1)
    words = [f"w{i}" for i in range(40)]
    docs = [[rng.choice(words) for _ in range(rng.randint(0, 30))] for _ in range(50)]
    for size in (1, 2, 10, 41, 100):
        vocab = build_vocabulary(docs, size)
        distinct = len({w for d in docs for w in d})
        expected_len = min(size - 1, distinct)
        assert len(vocab) == expected_len, f"size={size}: expected {expected_len} words (index 0 is reserved), got {len(vocab)}"
        assert sorted(vocab.values()) == list(range(1, expected_len + 1)), f"size={size}: indices must be exactly 1..{expected_len}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_vocabulary_order_matches_counts(build_vocabulary):
    import torch
    import torch.nn as nn
    import random
    from collections import Counter
    rng = random.Random(7)
    words = ["the", "film", "not", "bad", "good", "plot", "actor", "a", "zebra", "movie"]
    docs = []
    for _ in range(60):
        doc = [rng.choice(words) for _ in range(rng.randint(1, 12))]
        docs.append(doc + [doc[0]] * rng.randint(0, 5))  # repeats inside a review count too
    counts = Counter(w for d in docs for w in d)
    expected = {w: i for i, (w, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), start=1)}
    vocab = build_vocabulary(docs, 8)
    expected = {w: i for w, i in expected.items() if i < 8}
    assert vocab == expected, "words must be ranked by their total number of occurrences (ties alphabetical)"
    tie_docs = [["pear", "apple"], ["fig"]]
    assert build_vocabulary(tie_docs, 10) == {"apple": 1, "fig": 2, "pear": 3}, "ties must be broken alphabetically"
    at_the_cut = build_vocabulary([["pear", "apple", "fig", "kiwi", "kiwi"]], 3)  # the cut falls inside a tie of three
    assert at_the_cut == {"kiwi": 1, "apple": 2}, (
        f"size 3 keeps exactly 2 words; of the tied words the alphabetically first makes the cut, got {at_the_cut}")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 2. Multi-hot vectors
#
# A review (a list of word indices) becomes a vector of length `VOCAB_SIZE` with a 1 at every index that occurs in the
# review, however often, and 0 elsewhere (an empty review gives a row of zeros). Unknown words all share index 0, so
# position 0 says "this review contains at least one unknown word".
#
# **Memory**: 25,000 reviews × 10,000 words as float64 is 2 GB (the lecture's `np.zeros` version needs 4 GB for train and
# test together). We therefore only ever build multi-hot vectors for one batch of reviews at a time.
#
# **Example** (the check below): `multi_hot([[1, 3], [0, 2, 2]], 5)` is the float32 tensor of shape `(2, 5)`
# `[[0, 1, 0, 1, 0], [1, 0, 1, 0, 0]]` (the repeated 2 still gives a 1).
#
# **(2 points: 1 public, 1 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q2_multi_hot
# points: 2

# %%
def multi_hot(sequences, size):
    """float32 tensor of shape (len(sequences), size): 1.0 where an index occurs in a sequence, else 0.0."""
    # BEGIN SOLUTION
    out = torch.zeros(len(sequences), size, dtype=torch.float32)
    for row, seq in enumerate(sequences):
        if len(seq):
            out[row, torch.as_tensor(seq, dtype=torch.long)] = 1.0
    return out
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_multi_hot_small_example(multi_hot):
    assert multi_hot is not None, "multi_hot is not defined: run the cell that defines it (section 2) first"
    import torch
    import torch.nn as nn
    out = multi_hot([[1, 3], [0, 2, 2]], 5)
    assert out is not None, "multi_hot returned None: fill in the stub."
    assert torch.is_tensor(out), f"expected a torch tensor, got {type(out).__name__}"
    assert out.shape == (2, 5), f"expected shape (2, 5), got {tuple(out.shape)}"
    assert out.dtype == torch.float32, f"expected float32, got {out.dtype}"
    expected = torch.tensor([[0, 1, 0, 1, 0], [1, 0, 1, 0, 0]], dtype=torch.float32)
    assert torch.equal(out, expected), f"expected {expected.tolist()}, got {out.tolist()}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_multi_hot_random_and_edge_cases(multi_hot):
    import torch
    import torch.nn as nn
    import random
    rng = random.Random(3)
    size = 50
    seqs = [[rng.randrange(size) for _ in range(rng.randint(0, 80))] for _ in range(30)] + [[], [size - 1] * 4]
    out = multi_hot(seqs, size)
    assert tuple(out.shape) == (len(seqs), size) and out.dtype == torch.float32, "shape or dtype is wrong"
    assert set(out.unique().tolist()) <= {0.0, 1.0}, "entries must be 0 or 1, not word counts"
    for row, seq in enumerate(seqs):
        assert set(torch.nonzero(out[row]).flatten().tolist()) == set(seq), f"row {row} marks the wrong words"
    assert out[-2].sum() == 0, "an empty review must give a zero vector"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 3. Inverse document frequency
#
# With $N$ reviews (all of them, empty ones included), the lecture weighs word $i$ by
# $$\mathrm{idf}_i = \log\frac{N}{\mathrm{df}_i},\qquad \mathrm{df}_i = |\{d \in D : t_i \in d\}|,$$
# the **number of reviews that contain the word** (not how often it occurs in total), with the natural logarithm.
# A word in every review gets weight $\log 1 = 0$; a word in few reviews gets a large weight. Use exactly this formula
# (scikit-learn's default adds smoothing terms; we do not). A word that occurs in no review at all gets weight 0.
#
# **Example** (the check below): `inverse_document_frequency([[1, 2], [1], [1, 3, 3]], 5)` has shape `(5,)`:
# `[0, 0, ln 3, ln 3, 0]` ≈ `[0, 0, 1.0986, 1.0986, 0]` (index 1 occurs in all 3 reviews, 2 and 3 in one, 0 and 4 in
# none).
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q3_idf
# points: 3

# %%
def inverse_document_frequency(sequences, size):
    """float32 tensor of shape (size,): log(N / df) per word index, 0 for words in no document."""
    # BEGIN SOLUTION
    df = torch.zeros(size, dtype=torch.float64)
    for seq in sequences:
        if len(seq):
            df[torch.unique(torch.as_tensor(seq, dtype=torch.long))] += 1
    idf = torch.where(df > 0, torch.log(len(sequences) / df.clamp(min=1)), torch.zeros_like(df))
    return idf.float()
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_idf_small_example(inverse_document_frequency):
    assert inverse_document_frequency is not None, "inverse_document_frequency is not defined: run the cell that defines it (section 3) first"
    import torch
    import torch.nn as nn
    import math
    idf = inverse_document_frequency([[1, 2], [1], [1, 3, 3]], 5)
    assert idf is not None, "inverse_document_frequency returned None: fill in the stub."
    assert tuple(idf.shape) == (5,), f"expected shape (5,), got {tuple(idf.shape)}"
    expected = torch.tensor([0.0, 0.0, math.log(3), math.log(3), 0.0])
    assert torch.allclose(idf.float(), expected, atol=1e-5), f"expected {expected.tolist()}, got {idf.tolist()}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_idf_matches_formula_on_random_documents(inverse_document_frequency):
    import torch
    import torch.nn as nn
    import math, random
    rng = random.Random(11)
    size = 30
    docs = [[rng.randrange(size - 5) for _ in range(rng.randint(0, 40))] for _ in range(25)]
    docs += [[7] * 9]  # a word repeated many times in one review still has df + 1
    docs = [d + [3] for d in docs]  # word 3 is in every non-empty review
    docs += [[], []]  # empty reviews count in N
    idf = inverse_document_frequency(docs, size)
    assert torch.is_tensor(idf) and tuple(idf.shape) == (size,), "idf must be a tensor of shape (size,)"
    assert idf.dtype == torch.float32, f"expected float32, got {idf.dtype}"
    assert torch.isfinite(idf).all(), "idf must be finite (words in no review get 0)"
    n = len(docs)
    for word in range(size):
        df = sum(word in d for d in docs)
        expected = math.log(n / df) if df else 0.0
        assert abs(idf[word].item() - expected) < 1e-4, (
            f"idf of a word in {df} of {n} reviews should be log({n}/{df}) = {expected:.4f}, got {idf[word].item():.4f}"
            if df else "a word in no review must get idf 0")
    assert abs(idf[3].item() - math.log(n / (n - 2))) < 1e-4, "empty reviews count in N: idf = log(N / df) over all reviews"
    assert abs(inverse_document_frequency([[2, 1], [1], [1, 1]], 4)[1].item()) < 1e-6, "a word in every review must get idf 0"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 4. TF-IDF and L2 normalisation
#
# Multiply each multi-hot row by the idf vector, then divide the row by its Euclidean (L2) norm so that every review is a
# vector of length 1, however many words it has. A review with no known words (all zeros after weighting) must stay a
# zero vector: do not divide by zero. Do not modify the input tensor.
#
# **Example** (the check below): `tfidf_l2(torch.tensor([[1., 1., 0.], [0., 0., 0.]]), torch.tensor([3., 4., 1.]))`
# is `[[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]]`: the first row weighs to `[3, 4, 0]`, whose length is 5; the empty row stays
# zero.
#
# **(2 points: 0 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q4_tfidf_l2
# points: 2

# %%
def tfidf_l2(multi_hot_rows, idf):
    """Rows of `multi_hot_rows * idf`, each scaled to L2 norm 1 (all-zero rows stay zero)."""
    # BEGIN SOLUTION
    weighted = multi_hot_rows * idf
    norms = weighted.norm(dim=1, keepdim=True)
    return weighted / norms.clamp(min=1e-12)
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_tfidf_l2_small_example(tfidf_l2):
    assert tfidf_l2 is not None, "tfidf_l2 is not defined: run the cell that defines it (section 4) first"
    import torch
    import torch.nn as nn
    x = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    idf = torch.tensor([3.0, 4.0, 1.0])
    out = tfidf_l2(x, idf)
    assert out is not None, "tfidf_l2 returned None: fill in the stub."
    expected = torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(out, expected, atol=1e-6), f"expected {expected.tolist()}, got {out.tolist()}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_tfidf_l2_rows_random(tfidf_l2):
    import torch
    import torch.nn as nn
    gen = torch.Generator().manual_seed(5)
    x = (torch.rand(20, 40, generator=gen) < 0.2).float()
    x[4] = 0.0
    idf = torch.rand(40, generator=gen) * 3
    idf[:3] = 0.0
    before = x.clone()
    out = tfidf_l2(x, idf)
    assert torch.equal(x, before), "tfidf_l2 must not modify its input"
    assert tuple(out.shape) == (20, 40), f"expected shape (20, 40), got {tuple(out.shape)}"
    assert torch.isfinite(out).all(), "an all-zero review must not produce NaN (guard the division)"
    weighted = x * idf
    norms = weighted.norm(dim=1, keepdim=True)
    expected = torch.where(norms > 0, weighted / norms.clamp(min=1e-12), torch.zeros_like(weighted))
    assert torch.allclose(out, expected, atol=1e-5), "each row must be x * idf divided by that row's L2 norm"
    row_norms = out.norm(dim=1)
    assert torch.allclose(row_norms[norms.flatten() > 0], torch.ones(1), atol=1e-5), "non-empty rows must have norm 1"
    for scale in (1e-3, 50.0):  # rows of any length, below and above 1, become unit vectors
        assert torch.allclose(tfidf_l2(x, idf * scale), expected, atol=1e-5), (
            "scaling the idf must not change the normalised rows: divide by each row's norm, whatever its size")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 5. The model
#
# The lecture's network: `Linear(10000, 16) → ReLU → Dropout(0.5) → Linear(16, 16) → ReLU → Dropout(0.5) → Linear(16, 1)`.
# It takes multi-hot rows, applies your TF-IDF + L2 step with the `idf` it stores, and returns **one logit per review**
# (shape `(batch,)`), not a probability: the loss we use, `binary_cross_entropy_with_logits`, applies the sigmoid itself
# in a numerically stable way. A positive logit means "positive review".
#
# Keep the attribute names: the `idf` buffer and `self.mlp` (an `nn.Sequential` of the seven layers above, in that order),
# so your exported weights can be loaded by the grader. Dropout is active in training mode only, and training must
# reach the three linear layers (nothing detached).
#
# **Example** (the check below): `BagOfWordsClassifier(torch.ones(100))` has the tensors `idf` (100,),
# `mlp.0.weight` (16, 100), `mlp.0.bias` (16,), `mlp.3.weight` (16, 16), `mlp.3.bias` (16,), `mlp.6.weight` (1, 16) and
# `mlp.6.bias` (1,), and maps a batch of shape `(4, 100)` to logits of shape `(4,)`.
#
# **(3 points: 1 public, 2 hidden)**

# %% [raw]
# # BEGIN QUESTION
# name: q5_model
# points: 3

# %%
class BagOfWordsClassifier(nn.Module):
    def __init__(self, idf, hidden=16, dropout=0.5):
        super().__init__()
        self.register_buffer("idf", torch.as_tensor(idf, dtype=torch.float32).clone())
        self.mlp = nn.Sequential(  # SOLUTION
            nn.Linear(len(idf), hidden), nn.ReLU(), nn.Dropout(dropout),  # SOLUTION NO PROMPT
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),  # SOLUTION NO PROMPT
            nn.Linear(hidden, 1),  # SOLUTION NO PROMPT
        )  # SOLUTION NO PROMPT

    def forward(self, multi_hot_rows):
        """Logits of shape (batch,)."""
        # BEGIN SOLUTION
        return self.mlp(tfidf_l2(multi_hot_rows, self.idf)).squeeze(-1)
        # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
def test_model_shapes_and_names(BagOfWordsClassifier):
    assert BagOfWordsClassifier is not None, "BagOfWordsClassifier is not defined: run the cell that defines it (section 5) first"
    import torch
    import torch.nn as nn
    model = BagOfWordsClassifier(torch.ones(100))
    assert isinstance(getattr(model, "mlp", None), nn.Sequential), "self.mlp must be an nn.Sequential"
    names = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {"idf": (100,), "mlp.0.weight": (16, 100), "mlp.0.bias": (16,), "mlp.3.weight": (16, 16),
                "mlp.3.bias": (16,), "mlp.6.weight": (1, 16), "mlp.6.bias": (1,)}
    assert names == expected, f"state_dict should be {expected}, got {names}"
    out = model.eval()(torch.ones(4, 100))
    assert tuple(out.shape) == (4,), f"expected one logit per review, shape (4,), got {tuple(out.shape)}"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 2
""" # END TEST CONFIG
def test_model_computes_logits_of_tfidf(BagOfWordsClassifier):
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    idf = torch.rand(60) * 4
    model = BagOfWordsClassifier(idf).eval()
    x = (torch.rand(8, 60) < 0.3).float()
    weighted = x * idf
    features = weighted / weighted.norm(dim=1, keepdim=True).clamp(min=1e-12)
    with torch.no_grad():
        expected = model.mlp(features).squeeze(-1)
        out = model(x)
        assert tuple(out.shape) == (8,), f"expected one logit per review, shape (8,), got {tuple(out.shape)}"
        assert torch.allclose(out, expected, atol=1e-5), "forward must be mlp(tfidf_l2(x, idf)) with one logit per review"
        one = model(x[:1])
        assert tuple(one.shape) == (1,), f"a batch of one review must give shape (1,), got {tuple(one.shape)}"
        model.mlp[-1].bias.fill_(10.0)
        assert (model(x) > 1.5).all(), "forward must return raw logits, not sigmoid probabilities"
    dropouts = [m for m in model.mlp if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 2 and all(abs(m.p - 0.5) < 1e-9 for m in dropouts), "use two Dropout(0.5) layers"
    assert sum(isinstance(m, nn.ReLU) for m in model.mlp) == 2, "use ReLU after each hidden layer"
    model.train()
    torch.manual_seed(1)
    assert not torch.allclose(model(x), model(x)), "dropout must be active in training mode"
    logits = model.eval()(x)
    assert logits.requires_grad, "the logits must stay differentiable (no torch.no_grad or .detach() in forward)"
    logits.sum().backward()  # training reaches the three linear layers
    for i in (0, 3, 6):
        grad = model.mlp[i].weight.grad
        assert grad is not None and grad.abs().sum() > 0, f"a linear layer of the MLP gets no gradient (mlp[{i}]): nothing may be detached"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 6. Train on IMDB (not graded here; runs on a GPU or CPU)
#
# As in the lecture: shuffle the 25,000 training reviews with seed 42, hold out the first 10,000 for validation, build
# the vocabulary on the whole training split, and train with RMSprop (learning rate 1e-3) on batches of 512 reviews.
# `course.training.fit` draws the live loss/accuracy plot and restores the weights of the best validation epoch.

# %% tags=["otter_ignore"]
splits = data.imdb_splits()  # {"train": (texts, labels), "val": ..., "test": ...}
train_texts, train_labels = splits["train"]
val_texts, val_labels = splits["val"]
vocab = build_vocabulary((text.tokenize(t) for t in train_texts + val_texts), VOCAB_SIZE)
word_index = text.Vocabulary(sorted(vocab, key=vocab.get))  # the same mapping, with a cached encoder
train_ids = text.encode_texts(train_texts, word_index, progress=True)
val_ids = text.encode_texts(val_texts, word_index, progress=True)
idf = inverse_document_frequency(train_ids + val_ids, VOCAB_SIZE)
print(f"{len(vocab)} words; idf ranges from {idf[1:].min():.2f} ('{word_index.words[0]}') to {idf.max():.2f}")


# %% tags=["otter_ignore"]
def multi_hot_loader(sequences, labels, shuffle):
    """Batches of (multi-hot rows, labels), built one batch at a time to keep memory small."""
    pairs = list(zip(sequences, labels))
    collate = lambda batch: (multi_hot([s for s, _ in batch], VOCAB_SIZE), torch.tensor([l for _, l in batch], dtype=torch.float32))
    return torch.utils.data.DataLoader(pairs, batch_size=512, shuffle=shuffle, collate_fn=collate)


training.seed_everything(42)
model = BagOfWordsClassifier(idf)
optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
history = training.fit(model, multi_hot_loader(train_ids, train_labels, True), multi_hot_loader(val_ids, val_labels, False),
                       optimizer, epochs=15, title="TF-IDF bag of words")
plotting.plot_history(history, "TF-IDF bag of words");

# %% [markdown]
# ## 7. Export your weights (graded)
#
# The grader loads `a1_weights.safetensors` into the same architecture on a CPU and measures accuracy on all 25,000 IMDB
# test reviews. **To pass, test accuracy must be at least 86%.** A correct solution reaches 87.5–88.5% (seeds 42, 1 and
# 2); the 1.5-point margin covers seed-to-seed variation. Safetensors files hold only tensors, so loading one can never
# run code.
#
# **(4 points: 1 public, 3 hidden)**

# %% tags=["otter_ignore"]
test_texts, test_labels = splits["test"]
test_ids = text.encode_texts(test_texts, word_index, progress=True)
test_result = training.evaluate(model, multi_hot_loader(test_ids, test_labels, False))
print(f"test accuracy {test_result['acc']:.4f}")
training.save_weights(model.cpu(), "a1_weights.safetensors")

# %% [raw]
# # BEGIN QUESTION
# name: q6_trained_model
# points: 4

# %%
WEIGHTS_FILE = "a1_weights.safetensors"

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
    shapes = {"idf": (10000,), "mlp.0.weight": (16, 10000), "mlp.0.bias": (16,), "mlp.3.weight": (16, 16),
              "mlp.3.bias": (16,), "mlp.6.weight": (1, 16), "mlp.6.bias": (1,)}
    load_submitted_weights("a1_weights.safetensors", shapes)

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 3
failure_message: "Your exported model is below 86% accuracy on the IMDB test split (or could not be evaluated)."
""" # END TEST CONFIG
def test_test_accuracy_of_exported_weights():
    import torch
    import torch.nn as nn
    from course.grading import load_submitted_weights, imdb_test_ids
    shapes = {"idf": (10000,), "mlp.0.weight": (16, 10000), "mlp.0.bias": (16,), "mlp.3.weight": (16, 16),
              "mlp.3.bias": (16,), "mlp.6.weight": (1, 16), "mlp.6.bias": (1,)}
    state = load_submitted_weights("a1_weights.safetensors", shapes)
    mlp = torch.nn.Sequential(torch.nn.Linear(10000, 16), torch.nn.ReLU(), torch.nn.Identity(),
                              torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Identity(), torch.nn.Linear(16, 1))
    mlp.load_state_dict({k[len("mlp."):]: v for k, v in state.items() if k.startswith("mlp.")})
    idf = state["idf"]
    ids, labels = imdb_test_ids(vocab_size=10000)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(ids), 250):
            rows = torch.zeros(len(ids[start:start + 250]), 10000)
            for r, seq in enumerate(ids[start:start + 250]):
                rows[r, torch.as_tensor(seq, dtype=torch.long)] = 1.0
            weighted = rows * idf
            features = weighted / weighted.norm(dim=1, keepdim=True).clamp(min=1e-12)
            logits = mlp(features).squeeze(-1)
            correct += ((logits > 0).long() == torch.as_tensor(labels[start:start + 250])).sum().item()
    accuracy = correct / len(ids)
    print(f"test accuracy of the exported weights: {accuracy:.4f}")
    from course.grading import post_to_leaderboard
    post_to_leaderboard("Test accuracy", accuracy)
    assert accuracy >= 0.86, f"test accuracy {accuracy:.4f} is below the 0.86 threshold"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## 8. "The restaurant is not too terrible" (graded)
#
# Run your model on the lecture's sentence and on a reordering of it, then answer the question below: the value of
# `order_matters` is graded (its check only tells you whether you wrote `True` or `False`), and your explanation is
# read by the teaching staff.
#
# **(1 point: 0 public, 1 hidden)**

# %% tags=["otter_ignore"]
model.eval().cpu()
for sentence in ["the restaurant is not too terrible", "terrible too not is restaurant the", "the restaurant is terrible"]:
    row = multi_hot([word_index.encode(sentence)], VOCAB_SIZE)
    with torch.no_grad():
        print(f"{torch.sigmoid(model(row)).item():.3f}  {sentence}")

# %% [raw]
# # BEGIN QUESTION
# name: q7_word_order
# points: 1

# %% [markdown]
# Does the order of the words change this model's prediction? Set `order_matters` to `True` or `False`.
# Then answer the written question below it.

# %%
order_matters = False  # SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_answer_is_true_or_false(order_matters):
    assert order_matters is not None, "order_matters is not defined: run the cell that defines it (section 8) first"
    assert isinstance(order_matters, bool), "set order_matters to True or False (a bool, not a string)"

# %%
""" # BEGIN TEST CONFIG
hidden: true
points: 1
""" # END TEST CONFIG
def test_order_matters(order_matters):
    import torch
    import torch.nn as nn
    assert order_matters is False, "a multi-hot vector records which words occur, not where"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# **Written answer `w1_why_negative` (2 points, graded by the course staff).** In two or three sentences: why does the model call the lecture's sentence negative, and what kind of model could learn that "not" flips "terrible"?
#
# Write your answer in the cell below. The export cell puts it into `a1_tfidf_written_answers.md` inside your
# submission zip; save the notebook before exporting.

# %% [markdown] tags=["written_answer"] written_answer={"name": "w1_why_negative", "points": 2}
# _Type your answer here, replacing this text._

# %% [markdown] tags=["rubric"]
# 1 point: the features record which words occur, not their order or neighbours; "terrible" carries a strong negative weight that "not" (common in both classes) does not cancel, so the sum is negative, and the reordered sentence gets the same score. 1 point: a model that sees order or word interactions can learn the flip: bigram/n-gram features, an RNN, or attention with positions (assignment 5). 0 for "the model is not trained enough" alone.
