"""The course library: text processing, data errors, safe weight loading, grading-mode behaviour."""
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from course import data, grading, text, training


def test_tokenize_lowercases_and_drops_html_breaks():
    assert text.tokenize("Great<br /><br />movie, NOT bad!") == ["great", "movie", "not", "bad"]
    assert text.tokenize("") == []


def test_vocabulary_is_deterministic_and_reserves_zero():
    docs = ["b a b", "c a b", "d"]
    vocab = text.Vocabulary.from_texts(docs, size=3)
    assert vocab.words == ["b", "a"] and len(vocab) == 3
    assert vocab.encode("a b zebra") == [2, 1, 0]
    assert vocab.decode([2, 1, 0]) == "a b [UNK]"
    assert text.Vocabulary.from_texts(reversed(docs), size=10).words == text.Vocabulary.from_texts(docs, size=10).words


def test_vocabulary_save_load_roundtrip(tmp_path):
    vocab = text.Vocabulary.from_texts(["x y y z"], size=10)
    vocab.save(tmp_path / "v.txt")
    assert text.Vocabulary.load(tmp_path / "v.txt").words == vocab.words


def test_encode_texts_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    vocab = text.Vocabulary.from_texts(["a b c", "a"], size=10)
    first = text.encode_texts(["a b", "", "c zz"], vocab)
    assert len(list(tmp_path.glob("ids-*.npz"))) == 1
    second = text.encode_texts(["a b", "", "c zz"], vocab)
    assert [s.tolist() for s in first] == [s.tolist() for s in second] == [[1, 2], [], [3, 0]]


@pytest.mark.parametrize("padding,truncating,expected", [
    ("pre", "pre", [[0, 0, 1, 2], [3, 4, 5, 6], [0, 0, 0, 0]]),
    ("post", "post", [[1, 2, 0, 0], [2, 3, 4, 5], [0, 0, 0, 0]]),
])
def test_pad_sequences(padding, truncating, expected):
    out = text.pad_sequences([[1, 2], [2, 3, 4, 5, 6], []], 4, padding, truncating)
    assert out.dtype == np.int64 and out.tolist() == expected


def test_missing_data_names_both_options(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(data.DataUnavailableError, match="COURSE_DATA_DIR"):
        data.load_imdb()
    err = data._unavailable("the IMDB reviews", "imdb/*.parquet", data.IMDB_HUB_NAME, OSError("offline"))
    assert "COURSE_DATA_DIR" in str(err) and "Hugging Face Hub" in str(err) and "offline" in str(err)


SHAPES = {"w": (2, 3), "b": (2,)}


def _save(path, **tensors):
    from safetensors.torch import save_file
    save_file(tensors, str(path))


def test_load_submitted_weights_accepts_correct_file(tmp_path):
    _save(tmp_path / "ok.safetensors", w=torch.ones(2, 3), b=torch.zeros(2))
    state = grading.load_submitted_weights(tmp_path / "ok.safetensors", SHAPES)
    assert set(state) == {"w", "b"}


@pytest.mark.parametrize("case,match", [
    ("missing", "missing"), ("wrong_keys", "wrong tensors"), ("wrong_shape", "shape"),
    ("nan", "NaN"), ("pickle", "not a safetensors"), ("too_big", "cap"),
])
def test_load_submitted_weights_rejects_bad_files(tmp_path, case, match):
    path = tmp_path / "w.safetensors"
    if case == "wrong_keys":
        _save(path, w=torch.ones(2, 3), extra=torch.ones(1))
    elif case == "wrong_shape":
        _save(path, w=torch.ones(3, 2), b=torch.zeros(2))
    elif case == "nan":
        _save(path, w=torch.full((2, 3), float("nan")), b=torch.zeros(2))
    elif case == "pickle":
        marker = tmp_path / "executed"

        class Evil:
            def __reduce__(self):
                return (open, (str(marker), "w"))
        path.write_bytes(pickle.dumps(Evil()))
    elif case == "too_big":
        _save(path, w=torch.ones(2, 3), b=torch.zeros(2))
        with pytest.raises(grading.SubmissionError, match=match):
            grading.load_submitted_weights(path, SHAPES, max_mb=1e-6)
        return
    with pytest.raises(grading.SubmissionError, match=match):
        grading.load_submitted_weights(path, SHAPES)
    if case == "pickle":
        assert not (tmp_path / "executed").exists(), "loading a pickle ran code"


def test_training_and_saving_do_nothing_while_grading(monkeypatch, tmp_path):
    monkeypatch.setenv(grading.GRADING_ENV, "1")
    model = torch.nn.Linear(3, 1)
    before = model.weight.clone()
    loader = [(torch.randn(4, 3), torch.ones(4))]
    history = training.fit(model, loader, loader, torch.optim.SGD(model.parameters(), lr=1.0), epochs=3, live_plot=False)
    assert history["train_loss"] == [] and torch.equal(model.weight, before)
    training.save_weights(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_fit_learns_and_keeps_best_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(grading.GRADING_ENV, raising=False)
    training.seed_everything(0)
    x = torch.randn(256, 5)
    y = (x[:, 0] > 0).float()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = torch.nn.Linear(5, 1)
    wrapped = lambda inp: model(inp).squeeze(-1)
    net = torch.nn.Module()
    net.forward, net.lin = wrapped, model
    history = training.fit(net, loader, loader, torch.optim.Adam(model.parameters(), lr=0.05), epochs=5, live_plot=False)
    assert len(history["val_acc"]) == 5 and max(history["val_acc"]) > 0.9
    assert training.evaluate(net, loader)["acc"] == pytest.approx(max(history["val_acc"]))
    path = training.save_weights(model, tmp_path / "m.safetensors")
    loaded = training.load_weights(torch.nn.Linear(5, 1), path)
    assert torch.equal(loaded.weight, model.weight)


def test_fit_respects_a_time_budget_within_an_epoch(monkeypatch):
    monkeypatch.delenv(grading.GRADING_ENV, raising=False)
    import time as _time

    class SlowLinear(torch.nn.Linear):
        def forward(self, x):
            _time.sleep(0.05)
            return super().forward(x).squeeze(-1)

    x, y = torch.randn(400, 3), torch.ones(400)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)  # 100 batches, >= 5 s
    model = SlowLinear(3, 1)
    start = _time.time()
    history = training.fit(model, loader, [(x[:4], y[:4])], torch.optim.SGD(model.parameters(), lr=0.1), epochs=3,
                           live_plot=False, max_seconds=0.5)
    assert _time.time() - start < 3 and len(history["train_loss"]) == 1


def test_padded_loader_keeps_the_first_tokens_pads_at_the_end_and_keeps_labels():
    loader = text.padded_loader([[1, 2], [3, 4, 5, 6, 7]], [0, 1], max_length=4, batch_size=2)
    ids, labels = next(iter(loader))
    assert ids.tolist() == [[1, 2, 0, 0], [3, 4, 5, 6]] and labels.tolist() == [0.0, 1.0]
    lecture = text.padded_loader([[1, 2], [3, 4, 5, 6, 7]], [0, 1], 4, batch_size=2, padding="pre", truncating="pre")
    assert next(iter(lecture))[0].tolist() == [[0, 0, 1, 2], [4, 5, 6, 7]]


def test_length_grouped_batches_cover_every_index_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, size=1000)
    sampler = text.LengthGroupedBatches(lengths, batch_size=16, group=10)
    torch.manual_seed(0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 100, f"batches mix lengths (mean spread {spread:.0f}; random batches: about 470)"
    torch.manual_seed(0)
    assert list(sampler) == batches, "the shuffle must follow torch's seed"
    assert list(sampler) != batches, "each epoch must shuffle again"
    loader = torch.utils.data.DataLoader(list(range(1000)), batch_sampler=sampler)
    assert sum(len(b) for b in loader) == 1000


def test_fit_steps_a_scheduler_after_every_batch(monkeypatch):
    monkeypatch.delenv(grading.GRADING_ENV, raising=False)
    x, y = torch.randn(64, 3), torch.ones(64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)  # 8 batches
    net = torch.nn.Linear(3, 1)
    model = torch.nn.Module()
    model.forward, model.net = (lambda inp: net(inp).squeeze(-1)), net
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    schedule = training.warmup_then_decay(optimizer, total_steps=16, warmup_fraction=0.25)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 4)  # the first of 4 warm-up steps
    history = training.fit(model, loader, loader, optimizer, epochs=2, live_plot=False, scheduler=schedule)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # decayed to 0 after 16 steps
    assert len(history["seconds"]) == 2 and 0 < history["seconds"][0] <= history["seconds"][1]



class _TinyClassifier(torch.nn.Module):
    """Embedding bag + linear: one logit per row of ids; `scale` and `detach` make the two classic mistakes."""

    def __init__(self, scale=1.0, detach=False):
        super().__init__()
        self.embedding, self.head = torch.nn.Embedding(50, 8), torch.nn.Linear(8, 1)
        torch.nn.init.normal_(self.embedding.weight, std=0.1)
        self.scale, self.detach = scale, detach

    def forward(self, ids):
        pooled = self.embedding(ids).mean(1)
        return self.head(pooled.detach() if self.detach else pooled).squeeze(-1) * self.scale


def _tiny_batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 50, (16, 6), generator=generator), (torch.arange(16) % 2).float()


def test_sanity_check_passes_a_correct_model_and_leaves_it_unchanged(monkeypatch):
    monkeypatch.delenv(grading.GRADING_ENV, raising=False)
    training.seed_everything(0)
    model, threads = _TinyClassifier(), torch.get_num_threads()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = training.sanity_check(model, _tiny_batch(), training.binary_logit_loss, np.log(2), overfit_below=0.05,
                                   lr=0.05)
    assert abs(result["initial"] - np.log(2)) < 0.15 and result["final"] < 0.05 and result["seconds"] < 30
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the check must train a copy"
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("mistake,match", [
    (dict(scale=200.0), "untrained model's loss"),  # logits far too large: the initial loss is far from ln 2
    (dict(detach=True), "not below 0.05"),  # the embedding never learns: one batch cannot be memorised
])
def test_sanity_check_says_what_is_likely_wrong(monkeypatch, mistake, match):
    monkeypatch.delenv(grading.GRADING_ENV, raising=False)
    training.seed_everything(0)
    with pytest.raises(AssertionError, match=match) as error:
        training.sanity_check(_TinyClassifier(**mistake), _tiny_batch(), training.binary_logit_loss, np.log(2),
                              overfit_below=0.05, lr=0.05, steps=150, hint="Check the pooling.")
    assert "Check the pooling." in str(error.value)


def test_sanity_check_does_nothing_while_grading(monkeypatch):
    monkeypatch.setenv(grading.GRADING_ENV, "1")

    class Exploding(torch.nn.Module):
        def forward(self, ids):
            raise RuntimeError("a model must not run while grading")

    assert training.sanity_check(Exploding(), _tiny_batch(), training.binary_logit_loss, np.log(2), overfit_below=0.05) == {}


def test_figures_draw_the_students_functions_and_wait_for_stubs(capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course import plotting

    def stub(*args):
        ...

    def broken(*args):
        raise NotImplementedError("not yet")

    def pe(max_len, d):
        angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
        return torch.stack([angle.sin(), angle.cos()], -1).reshape(max_len, d)

    def split(x, h):
        return x.view(x.shape[0], x.shape[1], h, -1).transpose(1, 2)

    def merge(x):
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)

    assert plotting.causal_mask_figure(lambda n: torch.tril(torch.ones(n, n, dtype=torch.bool))) is not None
    assert plotting.positional_encoding_figure(pe) is not None
    assert plotting.heads_figure(split, merge) is not None
    assert plotting.heads_figure(split, stub) is not None  # the heads are drawn before merge_heads works
    for figure, functions in [(plotting.causal_mask_figure, [stub]), (plotting.positional_encoding_figure, [broken]),
                              (plotting.heads_figure, [stub, merge])]:
        assert figure(*functions) is None
    printed = capsys.readouterr().out
    assert "no figure yet: causal_mask returns Ellipsis" not in printed and "no figure yet: causal_mask returns None" in printed
    assert "positional_encoding raised NotImplementedError" in printed and "no figure yet: split_heads" in printed
    plt.close("all")
