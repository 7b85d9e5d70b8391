"""Assignment 1: the reference passes every test; each typical mistake fails at least one test;
different correct implementations pass."""

from mistake_checks import standard_tests

A = "a1_tfidf"


MISTAKES = {
    "q1_vocabulary": {
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
    "q7_word_order": {"says order matters": "order_matters = True"},
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


(test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
 test_graded_in_another_process_alike) = standard_tests(A, MISTAKES, ALTERNATIVES)
