"""Assignment 1: the reference passes every test; each typical mistake fails at least one test;
different correct implementations pass."""

from mistake_checks import standard_tests

A = "a1_tfidf"


MISTAKES = {
    "q1_vocabulary": {
        "keeps every word tied with the last one that makes the cut": """
def build_vocabulary(token_lists, size):
    c = Counter(w for t in token_lists for w in t)
    ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
    if size <= 1 or not ranked:
        return {}
    last = ranked[: size - 1][-1][1]
    return {w: i for i, (w, n) in enumerate(ranked, 1) if i < size or n == last}
""",
        "cut before the sort (the first size - 1 words seen, then ranked)": """
def build_vocabulary(token_lists, size):
    c = Counter(w for t in token_lists for w in t)
    ranked = sorted(list(c.items())[: size - 1], key=lambda kv: (-kv[1], kv[0]))
    return {w: i for i, (w, _) in enumerate(ranked, 1)}
""",
        "index 0 given to a word": """
def build_vocabulary(token_lists, size):
    c = Counter(w for t in token_lists for w in t)
    ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 1]
    return {w: i for i, (w, _) in enumerate(ranked)}
""",
        "size words instead of size - 1": """
def build_vocabulary(token_lists, size):
    c = Counter(w for t in token_lists for w in t)
    ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    return {w: i for i, (w, _) in enumerate(ranked, 1)}
""",
        "document counts instead of occurrences": """
def build_vocabulary(token_lists, size):
    c = Counter(w for t in token_lists for w in set(t))
    ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 1]
    return {w: i for i, (w, _) in enumerate(ranked, 1)}
""",
        "ties in first-seen order (Counter.most_common)": """
def build_vocabulary(token_lists, size):
    c = Counter(w for t in token_lists for w in t)
    return {w: i for i, (w, _) in enumerate(c.most_common(size - 1), 1)}
""",
    },
    "q2_multi_hot": {
        "counts instead of 0/1": """
def multi_hot(sequences, size):
    out = torch.zeros(len(sequences), size)
    for r, s in enumerate(sequences):
        for i in s:
            out[r, i] += 1
    return out
""",
        "float64": """
def multi_hot(sequences, size):
    out = torch.zeros(len(sequences), size, dtype=torch.float64)
    for r, s in enumerate(sequences):
        out[r, list(s)] = 1
    return out
""",
        "indices shifted by one": """
def multi_hot(sequences, size):
    out = torch.zeros(len(sequences), size)
    for r, s in enumerate(sequences):
        out[r, [i - 1 for i in s]] = 1
    return out
""",
    },
    "q3_idf": {
        "term counts instead of document frequency": """
def inverse_document_frequency(sequences, size):
    df = torch.zeros(size, dtype=torch.float64)
    for s in sequences:
        for i in s:
            df[i] += 1
    return torch.where(df > 0, torch.log(len(sequences) / df.clamp(min=1)), torch.zeros_like(df)).float()
""",
        "smoothed idf (scikit-learn default)": """
def inverse_document_frequency(sequences, size):
    df = torch.zeros(size, dtype=torch.float64)
    for s in sequences:
        df[list(set(s))] += 1
    return (torch.log((1 + len(sequences)) / (1 + df)) + 1).float()
""",
        "log base 10": """
def inverse_document_frequency(sequences, size):
    df = torch.zeros(size, dtype=torch.float64)
    for s in sequences:
        df[list(set(s))] += 1
    return torch.where(df > 0, torch.log10(len(sequences) / df.clamp(min=1)), torch.zeros_like(df)).float()
""",
        "inf for unseen words": """
def inverse_document_frequency(sequences, size):
    df = torch.zeros(size, dtype=torch.float64)
    for s in sequences:
        df[list(set(s))] += 1
    return torch.log(len(sequences) / df).float()
""",
    },
    "q4_tfidf_l2": {
        "one norm over the whole batch instead of one per row": """
def tfidf_l2(multi_hot_rows, idf):
    weighted = multi_hot_rows * idf
    return weighted / weighted.norm().clamp(min=1e-12)
""",
        "normalising columns": """
def tfidf_l2(x, idf):
    w = x * idf
    return w / w.norm(dim=0, keepdim=True).clamp(min=1e-12)
""",
        "division by zero on empty reviews": """
def tfidf_l2(x, idf):
    w = x * idf
    return w / w.norm(dim=1, keepdim=True)
""",
        "modifies the input in place": """
def tfidf_l2(x, idf):
    x *= idf
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
""",
        "forgets the idf": """
def tfidf_l2(x, idf):
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
""",
    },
    "q5_model": {
        "squeeze() without an axis (a batch of one gives a 0-d tensor)": """
class BagOfWordsClassifier(BagOfWordsClassifier):
    def forward(self, multi_hot_rows):
        return self.mlp(tfidf_l2(multi_hot_rows, self.idf)).squeeze()
""",
        "returns probabilities": """
class BagOfWordsClassifier(BagOfWordsClassifier):
    def forward(self, x):
        return torch.sigmoid(super().forward(x))
""",
        "skips TF-IDF": """
class BagOfWordsClassifier(BagOfWordsClassifier):
    def forward(self, x):
        return self.mlp(x).squeeze(-1)
""",
        "no dropout": """
_Base = BagOfWordsClassifier
class BagOfWordsClassifier(_Base):
    def __init__(self, idf):
        super().__init__(idf, dropout=0.0)
""",
        "keeps the (batch, 1) shape": """
class BagOfWordsClassifier(BagOfWordsClassifier):
    def forward(self, x):
        return self.mlp(tfidf_l2(x, self.idf))
""",
    },
    "q7_word_order": {"says order matters": "order_matters = True", "a string, not a bool": 'order_matters = "False"',
                      "left as the stub's ...": "order_matters = ..."},
}


ALTERNATIVES = {
    "q2_multi_hot": {
        "scatter_": """
def multi_hot(sequences, size):
    out = torch.zeros(len(sequences), size)
    for r, s in enumerate(sequences):
        out[r].scatter_(0, torch.as_tensor(list(s), dtype=torch.long), 1.0)
    return out
""",
        "numpy": """
def multi_hot(sequences, size):
    out = np.zeros((len(sequences), size), dtype=np.float32)
    for r, s in enumerate(sequences):
        out[r, list(s)] = 1
    return torch.from_numpy(out)
""",
        "sparse tensor": """
def multi_hot(sequences, size):
    rows = [r for r, s in enumerate(sequences) for _ in set(s)]
    cols = [c for s in sequences for c in sorted(set(s))]
    idx = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)
    return torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1]), (len(sequences), size)).to_dense()
""",
    },
    "q3_idf": {
        "torch.bincount": """
def inverse_document_frequency(sequences, size):
    seen = [torch.unique(torch.as_tensor(s, dtype=torch.long)) for s in sequences if len(s)]
    df = torch.bincount(torch.cat(seen), minlength=size).double() if seen else torch.zeros(size, dtype=torch.float64)
    idf = torch.log(len(sequences) / df)
    idf[df == 0] = 0
    return idf.float()
""",
        "numpy": """
def inverse_document_frequency(sequences, size):
    df = np.zeros(size)
    for s in sequences:
        df[np.unique(np.asarray(s, dtype=int))] += 1
    with np.errstate(divide="ignore"):
        idf = np.where(df > 0, np.log(len(sequences) / np.maximum(df, 1)), 0.0)
    return torch.tensor(idf, dtype=torch.float32)
""",
    },
    "q4_tfidf_l2": {
        "F.normalize": """
def tfidf_l2(x, idf):
    return torch.nn.functional.normalize(x * idf, p=2, dim=1)
""",
    },
    "q1_vocabulary": {
        "heapq-free manual sort": """
def build_vocabulary(token_lists, size):
    counts = {}
    for t in token_lists:
        for w in t:
            counts[w] = counts.get(w, 0) + 1
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return {w: i + 1 for i, w in enumerate(words[: max(size - 1, 0)])}
""",
    },
}


# bugs of the kinds that used to pass (gradient flow, edge cases, scale); each must fail a test of its question
BEHAVIOUR_MISTAKES = {
    "q3_idf": {
        "empty reviews left out of N": """
def inverse_document_frequency(sequences, size):
    sequences = [s for s in sequences if len(s)]
    df = torch.zeros(size, dtype=torch.float64)
    for seq in sequences:
        df[torch.unique(torch.as_tensor(seq, dtype=torch.long))] += 1
    return torch.where(df > 0, torch.log(len(sequences) / df.clamp(min=1)), torch.zeros_like(df)).float()
""",
    },
    "q4_tfidf_l2": {
        "norms clamped at 1 (rows shorter than 1 are left short)": """
def tfidf_l2(x, idf):
    w = x * idf
    return w / w.norm(dim=1, keepdim=True).clamp(min=1.0)
""",
    },
    "q5_model": {
        "features computed under no_grad, then the MLP detached": """
class BagOfWordsClassifier(BagOfWordsClassifier):
    def forward(self, x):
        with torch.no_grad():
            return self.mlp(tfidf_l2(x, self.idf)).squeeze(-1)
""",
    },
}
for _question, _variants in BEHAVIOUR_MISTAKES.items():
    MISTAKES.setdefault(_question, {}).update(_variants)


# correct implementations ported from public code (each written for this notebook's interface; the source is named above it)
PORTED = {
    "q1_vocabulary": {
        # Keras Preprocessing, github.com/keras-team/keras-preprocessing, keras_preprocessing/text.py: Tokenizer.fit_on_texts
        # (word_counts in an OrderedDict, sorted by count, indices from 1, num_words - 1 kept by texts_to_sequences);
        # Keras breaks ties by first occurrence, this notebook alphabetically: the sort key says so
        "Keras Tokenizer.fit_on_texts word_index": """
def build_vocabulary(token_lists, size):
    from collections import OrderedDict
    word_counts = OrderedDict()
    for seq in token_lists:
        for w in seq:
            if w in word_counts:
                word_counts[w] += 1
            else:
                word_counts[w] = 1
    wcounts = sorted(word_counts.items(), key=lambda x: (-x[1], x[0]))
    sorted_voc = [wc[0] for wc in wcounts]
    word_index = dict(zip(sorted_voc, list(range(1, len(sorted_voc) + 1))))
    return {w: i for w, i in word_index.items() if i < size}
""",
        # scikit-learn, sklearn/feature_extraction/text.py: CountVectorizer (vocabulary sorted alphabetically by
        # _sort_features, then _limit_features keeps the max_features most frequent: (-term_freqs).argsort()), with a
        # stable sort so that ties stay alphabetical
        "scikit-learn CountVectorizer max_features": """
def build_vocabulary(token_lists, size):
    counts = Counter(w for tokens in token_lists for w in tokens)
    feature_names = np.array(sorted(counts), dtype=object)
    term_freqs = np.array([counts[w] for w in feature_names])
    mask_inds = (-term_freqs).argsort(kind="stable")[: max(size - 1, 0)]
    return {str(feature_names[j]): i for i, j in enumerate(mask_inds, start=1)}
""",
    },
    "q2_multi_hot": {
        # Keras Preprocessing, keras_preprocessing/text.py: Tokenizer.sequences_to_matrix(mode="binary")
        # (x = np.zeros((len(sequences), num_words)); for j, c in counts.items(): x[i][j] = 1)
        "Keras Tokenizer.sequences_to_matrix(mode='binary')": """
def multi_hot(sequences, size):
    x = np.zeros((len(sequences), size))
    for i, seq in enumerate(sequences):
        counts = {}
        for j in seq:
            counts[j] = counts.get(j, 0) + 1
        for j, c in list(counts.items()):
            x[i][j] = 1
    return torch.tensor(x, dtype=torch.float32)
""",
        # Keras, github.com/keras-team/keras, keras/src/layers/preprocessing (TextVectorization / CategoryEncoding with
        # output_mode="multi_hot"): a bincount with binary_output=True, here torch.bincount clipped at 1
        "Keras multi_hot encoding as a binary bincount": """
def multi_hot(sequences, size):
    rows = [torch.bincount(torch.as_tensor(s, dtype=torch.long), minlength=size).clamp(max=1) for s in sequences]
    return torch.stack(rows).to(torch.float32) if rows else torch.zeros(0, size)
""",
    },
    "q3_idf": {
        # scikit-learn, sklearn/feature_extraction/text.py: TfidfTransformer.fit with smooth_idf=False (df from
        # _document_frequency: np.bincount of the columns with a non-zero; idf = log(n_samples / df) + 1): this notebook's
        # idf is theirs minus the 1, and 0 where df is 0
        "scikit-learn TfidfTransformer(smooth_idf=False), minus its + 1": """
def inverse_document_frequency(sequences, size):
    indices = [j for seq in sequences for j in set(seq)]
    df = np.bincount(np.asarray(indices, dtype=np.int64), minlength=size).astype(np.float64)
    n_samples = len(sequences)
    with np.errstate(divide="ignore"):
        idf = np.log(n_samples / df) + 1
    idf = np.where(df > 0, idf - 1, 0.0)
    return torch.from_numpy(idf).float()
""",
        # gensim, github.com/piskvorky/gensim, gensim/models/tfidfmodel.py: df2idf (log(totaldocs / docfreq) /
        # log(log_base)) and TfidfModel's dfs; gensim's default base is 2, the notebook's e
        "gensim df2idf with log_base e": """
def df2idf(docfreq, totaldocs, log_base=math.e, add=0.0):
    return add + np.log(float(totaldocs) / docfreq) / np.log(log_base)

def inverse_document_frequency(sequences, size):
    dfs = {}
    for bow in sequences:
        for termid in set(bow):
            dfs[termid] = dfs.get(termid, 0) + 1
    idfs = torch.zeros(size)
    for termid, df in dfs.items():
        idfs[termid] = float(df2idf(df, len(sequences)))
    return idfs
""",
    },
    "q4_tfidf_l2": {
        # scikit-learn, sklearn/preprocessing/_data.py: normalize(norm="l2") (row norms, _handle_zeros_in_scale turns
        # zero norms into 1, then X / norms[:, np.newaxis]), on a copy
        "scikit-learn normalize with _handle_zeros_in_scale": """
def tfidf_l2(multi_hot_rows, idf):
    X = (multi_hot_rows * idf).numpy().astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    norms[norms == 0.0] = 1.0
    X = X / norms[:, np.newaxis]
    return torch.from_numpy(X).float()
""",
    },
    "q5_model": {
        # François Chollet, Deep Learning with Python, github.com/fchollet/deep-learning-with-python-notebooks,
        # chapter04_getting-started-with-neural-networks.ipynb: the IMDB model Dense(16, relu) -> Dense(16, relu) -> Dense(1)
        # (here the logit, and the TF-IDF of this notebook in front, written with F.normalize)
        "Chollet's IMDB Dense(16)-Dense(16)-Dense(1), F.normalize inputs": """
class BagOfWordsClassifier(BagOfWordsClassifier):
    def forward(self, multi_hot_rows):
        inputs = torch.nn.functional.normalize(multi_hot_rows * self.idf, p=2.0, dim=1)
        return self.mlp(inputs)[:, 0]
""",
    },
}
for _question, _variants in PORTED.items():
    ALTERNATIVES.setdefault(_question, {}).update({f"ported: {k}": v for k, v in _variants.items()})


def test_at_least_eight_ported_alternatives():
    assert sum(len(v) for v in PORTED.values()) >= 8


(test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
 test_graded_in_another_process_alike) = standard_tests(A, MISTAKES, ALTERNATIVES)
