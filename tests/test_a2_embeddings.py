"""Assignment 2: the reference passes every test; each typical mistake fails at least one test;
different correct implementations pass."""

from autograder.masters import namespace, load
from mistake_checks import standard_tests

A = "a2_embeddings"


def test_every_question_has_public_and_hidden_tests():
    for question, tests in load(A).tests.items():
        assert any(not t.hidden for t in tests), f"{question} has no public test"
        assert any(t.hidden for t in tests), f"{question} has no hidden test"


MISTAKES = {
    "q1_pad_or_truncate": {
        "pads to the longest review when every review is shorter": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    width = min(max_length, max([len(s) for s in sequences] + [0]))
    out = torch.zeros(len(sequences), width, dtype=torch.long)
    for r, s in enumerate(sequences):
        s = [int(v) for v in s]
        kept = (s[-width:] if truncating == "pre" else s[:width]) if width else []
        if kept:
            if padding == "pre":
                out[r, width - len(kept):] = torch.tensor(kept)
            else:
                out[r, :len(kept)] = torch.tensor(kept)
    return out
""",
        "pads at the wrong end": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = torch.zeros(len(sequences), max_length, dtype=torch.long)
    for r, s in enumerate(sequences):
        s = list(s)
        s = s[-max_length:] if truncating == "pre" else s[:max_length]
        if s:
            if padding == "post":
                out[r, max_length - len(s):] = torch.tensor(s)
            else:
                out[r, :len(s)] = torch.tensor(s)
    return out
""",
        "truncates the wrong end": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = torch.zeros(len(sequences), max_length, dtype=torch.long)
    for r, s in enumerate(sequences):
        s = list(s)
        s = s[:max_length] if truncating == "pre" else s[-max_length:]
        if s:
            if padding == "pre":
                out[r, max_length - len(s):] = torch.tensor(s)
            else:
                out[r, :len(s)] = torch.tensor(s)
    return out
""",
        "ignores the modes (always pre)": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = torch.zeros(len(sequences), max_length, dtype=torch.long)
    for r, s in enumerate(sequences):
        s = list(s)[-max_length:]
        if s:
            out[r, max_length - len(s):] = torch.tensor(s)
    return out
""",
        "off by one: keeps max_length - 1 words": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = torch.zeros(len(sequences), max_length, dtype=torch.long)
    for r, s in enumerate(sequences):
        s = list(s)
        if len(s) >= max_length:
            s = s[-(max_length - 1):] if truncating == "pre" else s[:max_length - 1]
        if s:
            if padding == "pre":
                out[r, max_length - len(s):] = torch.tensor(s)
            else:
                out[r, :len(s)] = torch.tensor(s)
    return out
""",
        "off by one: rows of max_length + 1": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = torch.zeros(len(sequences), max_length + 1, dtype=torch.long)
    for r, s in enumerate(sequences):
        s = list(s)
        s = s[-max_length:] if truncating == "pre" else s[:max_length]
        if s:
            if padding == "pre":
                out[r, max_length + 1 - len(s):] = torch.tensor(s)
            else:
                out[r, :len(s)] = torch.tensor(s)
    return out
""",
        "empty review crashes or -0 slice (s[-0:] keeps all)": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = torch.zeros(len(sequences), max_length, dtype=torch.long)
    for r, s in enumerate(sequences):
        s = list(s)
        s = s[-max_length:] if truncating == "pre" else s[:max_length]
        if padding == "pre":
            out[r, -len(s):] = torch.tensor(s, dtype=torch.long)
        else:
            out[r, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out
""",
        "float tensor": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = torch.zeros(len(sequences), max_length)
    for r, s in enumerate(sequences):
        s = list(s)
        s = s[-max_length:] if truncating == "pre" else s[:max_length]
        if s:
            if padding == "pre":
                out[r, max_length - len(s):] = torch.tensor(s, dtype=torch.float32)
            else:
                out[r, :len(s)] = torch.tensor(s, dtype=torch.float32)
    return out
""",
        "returns a NumPy array": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = np.zeros((len(sequences), max_length), dtype=np.int64)
    for r, s in enumerate(sequences):
        s = list(s)
        s = s[-max_length:] if truncating == "pre" else s[:max_length]
        if s:
            if padding == "pre":
                out[r, max_length - len(s):] = s
            else:
                out[r, :len(s)] = s
    return out
""",
    },
    "q2_masked_mean": {
        "plain mean over padded positions": """
def masked_mean(vectors, ids):
    return vectors.mean(dim=1)
""",
        "divides by max_length": """
def masked_mean(vectors, ids):
    mask = (ids != 0).unsqueeze(-1).float()
    return (vectors * mask).sum(1) / ids.shape[1]
""",
        "NaN for reviews that are all padding": """
def masked_mean(vectors, ids):
    mask = (ids != 0).unsqueeze(-1).float()
    return (vectors * mask).sum(1) / mask.sum(1)
""",
        "count off by one (+1 to avoid division by zero)": """
def masked_mean(vectors, ids):
    mask = (ids != 0).unsqueeze(-1).float()
    return (vectors * mask).sum(1) / (mask.sum(1) + 1)
""",
        "masks the wrong positions (ids == 0)": """
def masked_mean(vectors, ids):
    mask = (ids == 0).unsqueeze(-1).float()
    return (vectors * mask).sum(1) / mask.sum(1).clamp(min=1)
""",
        "modifies the vectors in place": """
def masked_mean(vectors, ids):
    with torch.no_grad():
        vectors[ids == 0] = 0.0
    return vectors.sum(1) / (ids != 0).sum(1, keepdim=True).clamp(min=1)
""",
        "pools over the wrong dimension": """
def masked_mean(vectors, ids):
    mask = (ids != 0).unsqueeze(-1).float()
    return (vectors * mask).sum(2) / mask.sum(2).clamp(min=1)
""",
    },
    "q3_model": {
        "squeeze() without an axis (a batch of one gives a 0-d tensor)": """
class EmbeddingClassifier(EmbeddingClassifier):
    def forward(self, ids):
        return self.head(masked_mean(self.embedding(ids), ids)).squeeze()
""",
        "always the plain mean": """
class EmbeddingClassifier(EmbeddingClassifier):
    def forward(self, ids):
        return self.head(self.embedding(ids).mean(1)).squeeze(-1)
""",
        "returns probabilities": """
class EmbeddingClassifier(EmbeddingClassifier):
    def forward(self, ids):
        return torch.sigmoid(self.head(masked_mean(self.embedding(ids), ids)).squeeze(-1))
""",
        "keeps the (batch, 1) shape": """
class EmbeddingClassifier(EmbeddingClassifier):
    def forward(self, ids):
        return self.head(masked_mean(self.embedding(ids), ids))
""",
        "max pooling": """
class EmbeddingClassifier(EmbeddingClassifier):
    def forward(self, ids):
        return self.head(self.embedding(ids).max(1).values).squeeze(-1)
""",
    },
    "q5_glove_matrix": {
        "rows misaligned by one (forgets that index 0 is reserved)": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    m = np.zeros((len(words) + 1, glove_vectors.shape[1]), dtype=np.float32)
    missing = 0
    for i, w in enumerate(words):
        if w in glove_index:
            m[i] = glove_vectors[glove_index[w]]
        else:
            missing += 1
    return torch.from_numpy(m), missing
""",
        "no row for index 0 (len(words) rows)": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    m = np.zeros((len(words), glove_vectors.shape[1]), dtype=np.float32)
    missing = 0
    for i, w in enumerate(words):
        if w in glove_index:
            m[i] = glove_vectors[glove_index[w]]
        else:
            missing += 1
    return torch.from_numpy(m), missing
""",
        "missing words get random vectors": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    m = np.random.default_rng(0).normal(size=(len(words) + 1, glove_vectors.shape[1])).astype(np.float32)
    m[0] = 0
    missing = 0
    for i, w in enumerate(words, 1):
        if w in glove_index:
            m[i] = glove_vectors[glove_index[w]]
        else:
            missing += 1
    return torch.from_numpy(m), missing
""",
        "counts the found words instead of the missing ones": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    m = np.zeros((len(words) + 1, glove_vectors.shape[1]), dtype=np.float32)
    found = 0
    for i, w in enumerate(words, 1):
        if w in glove_index:
            m[i] = glove_vectors[glove_index[w]]
            found += 1
    return torch.from_numpy(m), found
""",
        "float64 matrix": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    m = np.zeros((len(words) + 1, glove_vectors.shape[1]))
    missing = 0
    for i, w in enumerate(words, 1):
        if w in glove_index:
            m[i] = glove_vectors[glove_index[w]]
        else:
            missing += 1
    return torch.from_numpy(m), missing
""",
    },
    "q6_pretrained": {
        "freeze flag ignored": """
def pretrained_classifier(matrix, freeze):
    model = EmbeddingClassifier(matrix.shape[0], matrix.shape[1])
    model.embedding.weight.data.copy_(torch.as_tensor(matrix))
    return model
""",
        "freeze flag inverted": """
def pretrained_classifier(matrix, freeze):
    model = EmbeddingClassifier(matrix.shape[0], matrix.shape[1])
    model.embedding.weight.data.copy_(torch.as_tensor(matrix))
    model.embedding.weight.requires_grad_(freeze)
    return model
""",
        "freezes the whole model": """
def pretrained_classifier(matrix, freeze):
    model = EmbeddingClassifier(matrix.shape[0], matrix.shape[1])
    model.embedding.weight.data.copy_(torch.as_tensor(matrix))
    if freeze:
        model.requires_grad_(False)
    return model
""",
        "keeps the random initialisation": """
def pretrained_classifier(matrix, freeze):
    model = EmbeddingClassifier(matrix.shape[0], matrix.shape[1])
    model.embedding.weight.requires_grad_(not freeze)
    return model
""",
        "shares the caller's matrix (fine-tuning changes it)": """
def pretrained_classifier(matrix, freeze):
    model = EmbeddingClassifier(matrix.shape[0], matrix.shape[1])
    model.embedding.weight = nn.Parameter(matrix, requires_grad=not freeze)
    return model
""",
    },
    "q7_neighbours": {
        "dot product instead of cosine": """
def nearest_neighbours(matrix, query, k):
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    return torch.topk(matrix @ query, k).indices
""",
        "least similar first": """
def nearest_neighbours(matrix, query, k):
    norms = matrix.norm(dim=1)
    sim = (matrix @ query) / (norms * query.norm()).clamp(min=1e-12)
    sim[norms == 0] = float("inf")
    return torch.topk(sim, k, largest=False).indices
""",
        "Euclidean distance": """
def nearest_neighbours(matrix, query, k):
    d = (matrix - query).norm(dim=1)
    d[matrix.norm(dim=1) == 0] = float("inf")
    return torch.topk(d, k, largest=False).indices
""",
        "zero rows not excluded": """
def nearest_neighbours(matrix, query, k):
    norms = matrix.norm(dim=1)
    sim = (matrix @ query) / (norms * query.norm()).clamp(min=1e-12)
    return torch.topk(sim, k).indices
""",
    },
}


ALTERNATIVES = {
    "q1_pad_or_truncate": {
        "numpy, then torch.from_numpy": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = np.zeros((len(sequences), max_length), dtype=np.int64)
    for r, s in enumerate(sequences):
        s = np.asarray(s, dtype=np.int64)
        if len(s) > max_length:
            s = s[-max_length:] if truncating == "pre" else s[:max_length]
        if len(s):
            if padding == "pre":
                out[r, -len(s):] = s
            else:
                out[r, :len(s)] = s
    return torch.from_numpy(out)
""",
        "torch only, with F.pad": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    rows = []
    for s in sequences:
        t = torch.tensor(list(s), dtype=torch.long)
        t = t[max(len(t) - max_length, 0):] if truncating == "pre" else t[:max_length]
        gap = max_length - len(t)
        rows.append(torch.nn.functional.pad(t, (gap, 0) if padding == "pre" else (0, gap)))
    return torch.stack(rows) if rows else torch.zeros(0, max_length, dtype=torch.long)
""",
        "Python lists": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    out = []
    for s in sequences:
        s = [int(x) for x in s]
        if len(s) > max_length:
            s = s[len(s) - max_length:] if truncating == "pre" else s[:max_length]
        pad = [0] * (max_length - len(s))
        out.append(pad + s if padding == "pre" else s + pad)
    return torch.tensor(out, dtype=torch.long).reshape(len(out), max_length)
""",
    },
    "q2_masked_mean": {
        "masked_fill, then sum / count": """
def masked_mean(vectors, ids):
    pad = (ids == 0).unsqueeze(-1)
    total = vectors.masked_fill(pad, 0.0).sum(dim=1)
    count = (~pad).sum(dim=1).clamp(min=1)
    return total / count
""",
        "einsum with a float mask": """
def masked_mean(vectors, ids):
    mask = (ids != 0).float()
    total = torch.einsum("bt,btd->bd", mask, vectors)
    return total / mask.sum(1, keepdim=True).clamp(min=1.0)
""",
        "torch.where guarding empty rows": """
def masked_mean(vectors, ids):
    mask = (ids != 0).unsqueeze(-1)
    count = mask.sum(1)
    total = torch.where(mask, vectors, torch.zeros_like(vectors)).sum(1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
""",
    },
    "q3_model": {
        "pooling written inline": """
class EmbeddingClassifier(EmbeddingClassifier):
    def forward(self, ids):
        e = self.embedding(ids)
        if self.pooling == "mean":
            pooled = e.sum(1) / ids.shape[1]
        else:
            m = (ids > 0).float().unsqueeze(2)
            pooled = (e * m).sum(1) / m.sum(1).clamp(min=1)
        return self.head(pooled)[:, 0]
""",
    },
    "q5_glove_matrix": {
        "torch, vectorised": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    rows = [glove_index.get(w, -1) for w in words]
    found = [i for i, r in enumerate(rows, 1) if r >= 0]
    matrix = torch.zeros(len(words) + 1, glove_vectors.shape[1])
    if found:
        matrix[found] = torch.as_tensor(np.asarray(glove_vectors)[[r for r in rows if r >= 0]], dtype=torch.float32)
    return matrix, len(words) - len(found)
""",
        "returns a NumPy float32 matrix": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    m = np.zeros((len(words) + 1, glove_vectors.shape[1]), dtype=np.float32)
    for i, w in enumerate(words, 1):
        if w in glove_index:
            m[i] = glove_vectors[glove_index[w]]
    return torch.tensor(m), sum(w not in glove_index for w in words)
""",
    },
    "q6_pretrained": {
        "nn.Embedding.from_pretrained": """
def pretrained_classifier(matrix, freeze):
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    model = EmbeddingClassifier(matrix.shape[0], matrix.shape[1])
    model.embedding = nn.Embedding.from_pretrained(matrix.clone(), freeze=freeze)
    return model
""",
        "freezes with a detach in a subclass": """
class _Frozen(EmbeddingClassifier):
    def forward(self, ids):
        vectors = self.embedding(ids).detach()
        return self.head(masked_mean(vectors, ids)).squeeze(-1)

def pretrained_classifier(matrix, freeze):
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    model = (_Frozen if freeze else EmbeddingClassifier)(matrix.shape[0], matrix.shape[1])
    model.embedding.weight.data.copy_(matrix)
    if freeze:
        model.embedding.weight.requires_grad_(False)
    return model
""",
    },
    "q7_neighbours": {
        "normalise rows, then argsort": """
def nearest_neighbours(matrix, query, k):
    m = torch.nn.functional.normalize(torch.as_tensor(matrix, dtype=torch.float32), dim=1)
    q = torch.nn.functional.normalize(torch.as_tensor(query, dtype=torch.float32), dim=0)
    sim = m @ q
    sim = torch.where(m.norm(dim=1) > 0, sim, torch.full_like(sim, -10.0))
    return torch.argsort(sim, descending=True)[:k]
""",
        "F.cosine_similarity": """
def nearest_neighbours(matrix, query, k):
    sim = torch.nn.functional.cosine_similarity(matrix, query.unsqueeze(0), dim=1)
    sim[matrix.abs().sum(1) == 0] = -float("inf")
    return sim.topk(k).indices.long()
""",
    },
}


# bugs of the kinds that used to pass (gradient flow, edge cases); each must fail a test of its question
BEHAVIOUR_MISTAKES = {
    "q3_model": {
        "word vectors detached (the embedding never learns)": """
class EmbeddingClassifier(EmbeddingClassifier):
    def forward(self, ids):
        vectors = self.embedding(ids).detach()
        pooled = masked_mean(vectors, ids) if self.pooling == "masked" else vectors.mean(dim=1)
        return self.head(pooled).squeeze(-1)
""",
        "masked pooling by max over the real words": """
class EmbeddingClassifier(EmbeddingClassifier):
    def forward(self, ids):
        vectors = self.embedding(ids)
        if self.pooling == "masked":
            pooled = vectors.masked_fill((ids == 0).unsqueeze(-1), -1e9).amax(1)
        else:
            pooled = vectors.mean(dim=1)
        return self.head(pooled).squeeze(-1)
""",
    },
}
for _question, _variants in BEHAVIOUR_MISTAKES.items():
    MISTAKES.setdefault(_question, {}).update(_variants)


# correct implementations ported from public code (each written for this notebook's interface; the source is named above it)
PORTED = {
    "q1_pad_or_truncate": {
        # Keras, github.com/keras-team/keras, keras/src/utils/sequence_utils.py: pad_sequences (x = np.full(..., value);
        # trunc = s[-maxlen:] or s[:maxlen]; x[idx, -len(trunc):] = trunc or x[idx, :len(trunc)] = trunc; empty skipped)
        "Keras pad_sequences": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError("padding and truncating must be 'pre' or 'post'")
    num_samples = len(sequences)
    x = np.full((num_samples, max_length), 0, dtype="int64")
    for idx, s in enumerate(sequences):
        if not len(s):
            continue  # empty list/array was found
        if truncating == "pre":
            trunc = s[-max_length:]
        else:
            trunc = s[:max_length]
        trunc = np.asarray(trunc, dtype="int64")
        if padding == "post":
            x[idx, : len(trunc)] = trunc
        else:
            x[idx, -len(trunc):] = trunc
    return torch.from_numpy(x)
""",
        # PyTorch documentation: torch.nn.utils.rnn.pad_sequence(batch_first=True, padding_side=...) pads to the longest
        # sequence; then F.pad widens the batch to max_length on the padding side
        "torch.nn.utils.rnn.pad_sequence with padding_side": """
def pad_or_truncate(sequences, max_length, padding="pre", truncating="pre"):
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError("padding and truncating must be 'pre' or 'post'")
    cut = [torch.as_tensor(np.asarray(s, dtype=np.int64))[-max_length:] if truncating == "pre" else
           torch.as_tensor(np.asarray(s, dtype=np.int64))[:max_length] for s in sequences]
    side = "left" if padding == "pre" else "right"
    batch = torch.nn.utils.rnn.pad_sequence(cut + [torch.zeros(0, dtype=torch.long)], batch_first=True,
                                            padding_value=0, padding_side=side)[:-1]
    missing = max_length - batch.shape[1]
    return torch.nn.functional.pad(batch, (missing, 0) if padding == "pre" else (0, missing)).long()
""",
    },
    "q2_masked_mean": {
        # sentence-transformers, github.com/UKPLab/sentence-transformers, sentence_transformers/models/Pooling.py: mean
        # pooling (input_mask_expanded = mask.unsqueeze(-1).expand(size).float(); sum / clamp(mask.sum(1), min=1e-9))
        "sentence-transformers mean pooling": """
def masked_mean(vectors, ids):
    input_mask_expanded = (ids != 0).unsqueeze(-1).expand(vectors.size()).float()
    sum_embeddings = torch.sum(vectors * input_mask_expanded, 1)
    sum_mask = torch.clamp(input_mask_expanded.sum(1), min=1e-9)
    return sum_embeddings / sum_mask
""",
        # AllenNLP, github.com/allenai/allennlp, allennlp/nn/util.py: masked_mean (masked_fill(~mask, 0.0), sum, count
        # clamped at the dtype's tiny value)
        "AllenNLP masked_mean": """
def masked_mean(vectors, ids):
    mask = (ids != 0).unsqueeze(-1)
    replaced_vector = vectors.masked_fill(~mask, 0.0)
    value_sum = torch.sum(replaced_vector, dim=1)
    value_count = torch.sum(mask, dim=1)
    return value_sum / value_count.float().clamp(min=torch.finfo(vectors.dtype).tiny)
""",
    },
    "q5_glove_matrix": {
        # Keras examples, github.com/keras-team/keras-io, examples/nlp/pretrained_word_embeddings.py: the embedding_matrix
        # loop (np.zeros, embeddings_index.get(word), hits and misses), with row i for words[i - 1]
        "keras-io pretrained_word_embeddings hits and misses": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    num_tokens, embedding_dim = len(words) + 1, glove_vectors.shape[1]
    hits, misses = 0, 0
    embedding_matrix = np.zeros((num_tokens, embedding_dim), dtype=np.float32)
    word_index = {word: i for i, word in enumerate(words, start=1)}
    for word, i in word_index.items():
        row = glove_index.get(word)
        if row is not None:
            embedding_matrix[i] = glove_vectors[row]
            hits += 1
        else:
            misses += 1
    return torch.from_numpy(embedding_matrix), misses
""",
        # torchtext, github.com/pytorch/text, torchtext/vocab/vectors.py: Vectors.get_vecs_by_tokens (a stacked row per
        # token, unk_init = zeros for tokens not in stoi), with the zero row 0 in front
        "torchtext Vectors.get_vecs_by_tokens with zero unk_init": """
def build_embedding_matrix(words, glove_index, glove_vectors):
    dim = glove_vectors.shape[1]
    unk_init = lambda t: torch.zeros_like(t)

    def getitem(token):
        if token in glove_index:
            return torch.as_tensor(np.asarray(glove_vectors[glove_index[token]]), dtype=torch.float32)
        return unk_init(torch.empty(dim))

    vecs = torch.stack([torch.zeros(dim)] + [getitem(token) for token in words])
    return vecs, sum(token not in glove_index for token in words)
""",
    },
    "q6_pretrained": {
        # Keras examples, keras-io examples/nlp/pretrained_word_embeddings.py: Embedding(num_tokens, dim,
        # embeddings_initializer=Constant(embedding_matrix), trainable=False): the weights set to a copy, trainable
        # becoming requires_grad
        "keras-io Constant initializer and trainable=False": """
def pretrained_classifier(matrix, freeze):
    num_tokens, embedding_dim = matrix.shape
    model = EmbeddingClassifier(num_tokens, embedding_dim)
    model.embedding.weight.data = torch.as_tensor(matrix, dtype=torch.float32).clone()
    trainable = not freeze
    for param in model.embedding.parameters():
        param.requires_grad = trainable
    return model
""",
    },
    "q7_neighbours": {
        # gensim, github.com/piskvorky/gensim, gensim/models/keyedvectors.py: KeyedVectors.most_similar (fill_norms, unit
        # query, dot(vectors, mean) / norms, argsort reverse=True), with all-zero rows, which gensim would divide by 0,
        # left out
        "gensim KeyedVectors.most_similar": """
def nearest_neighbours(matrix, query, k):
    vectors = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    mean = np.asarray(query, dtype=np.float32)
    mean = mean / np.linalg.norm(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        dists = np.dot(vectors, mean) / norms
    dists[norms == 0] = -np.inf
    best = np.argsort(-dists, kind="stable")[:k]
    return torch.from_numpy(best.astype(np.int64))
""",
        # scikit-learn: NearestNeighbors(metric="cosine", algorithm="brute").kneighbors, i.e. sklearn/metrics/pairwise.py
        # cosine_distances = 1 - cosine_similarity (rows normalised by normalize, zero rows left zero), nearest first;
        # its zero rows sit at distance 1, so they are put at infinity here
        "scikit-learn brute-force cosine kneighbors": """
def nearest_neighbours(matrix, query, k):
    X = matrix / matrix.norm(dim=1, keepdim=True).clamp(min=1e-30)
    Y = query / query.norm()
    distances = 1.0 - X @ Y
    distances[matrix.norm(dim=1) == 0] = float("inf")
    return torch.argsort(distances, stable=True)[:k]
""",
    },
}
for _question, _variants in PORTED.items():
    ALTERNATIVES.setdefault(_question, {}).update({f"ported: {k}": v for k, v in _variants.items()})


def test_at_least_eight_ported_alternatives():
    assert sum(len(v) for v in PORTED.values()) >= 8


(test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
 test_graded_in_another_process_alike) = standard_tests(A, MISTAKES, ALTERNATIVES)


def test_reference_glove_matrix_matches_the_package():
    """The real GloVe package: the reference's matrix rows are the package's vectors; missing words are zero.
    (Not a hidden test: loading GloVe's 400k-word index costs the grading kernel about 60 MB.)"""
    import numpy as np
    import torch
    from course.embeddings import load_glove

    index, vectors = load_glove()
    words = ["the", "movie", "queen", "notawordatallqq"]
    matrix, missing = namespace(A)["build_embedding_matrix"](words, index, vectors)
    assert missing == 1
    for row, word in enumerate(words[:3], start=1):
        assert np.allclose(np.asarray(torch.as_tensor(matrix)[row]), vectors[index[word]])
    assert not torch.as_tensor(matrix)[4].any()
