"""Assignment 3: the reference passes every test; each typical mistake fails at least one test of its
question; different correct implementations pass."""

from autograder.masters import load
from mistake_checks import standard_tests

A = "a3_self_attention"


def test_every_question_has_hidden_tests():
    for question, tests in load(A).tests.items():
        assert any(t.hidden for t in tests) and any(not t.hidden for t in tests), question


MISTAKES = {
    "q1_simple_self_attention": {
        "softmax over the wrong axis": """
def simple_self_attention(x):
    w = torch.softmax(x @ x.transpose(-2, -1), dim=1)
    return w @ x, w
""",
        "transposed weights (y = wᵀ x)": """
def simple_self_attention(x):
    w = torch.softmax(x @ x.transpose(-2, -1), dim=-1)
    return w.transpose(-2, -1) @ x, w
""",
        "scaled although the simple version is not": """
def simple_self_attention(x):
    w = torch.softmax(x @ x.transpose(-2, -1) / math.sqrt(x.shape[-1]), dim=-1)
    return w @ x, w
""",
        "xᵀx over the batch (transpose(0, 1) on a 3-d tensor)": """
def simple_self_attention(x):
    w = torch.softmax(x @ x.transpose(0, 2).transpose(0, 1).transpose(1, 2), dim=-1)
    return w @ x, w
""",
        "weights without softmax": """
def simple_self_attention(x):
    w = x @ x.transpose(-2, -1)
    return w @ x, w
""",
        "softmax over the whole flattened matrix": """
def simple_self_attention(x):
    s = x @ x.transpose(-2, -1)
    w = torch.softmax(s.flatten(1), dim=-1).view_as(s)
    return w @ x, w
""",
    },
    "q2_scaled_dot_product": {
        "no scaling": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "divides by k instead of sqrt(k)": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / q.shape[-1]
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "scales by sqrt of the sequence length": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "softmax over the queries": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-2)
    return w @ v, w
""",
        "mask polarity inverted": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "mask applied after the softmax (rows no longer sum to 1)": """
def scaled_dot_product_attention(q, k, v, mask=None):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:
        w = w * mask
    return w @ v, w
""",
        "mask by multiplying the scores by 0": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s * mask
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "mask ignored": """
def scaled_dot_product_attention(q, k, v, mask=None):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v, w
""",
        "naive softmax exp / sum overflows": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    e = torch.exp(s)
    if mask is not None:
        e = e * mask
    w = e / e.sum(-1, keepdim=True)
    return w @ v, w
""",
        "keys not transposed (q kᵀ written as q k on square inputs)": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = (q @ k.transpose(-2, -1)).transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "transpose(1, 2) only works for 3-d inputs": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
    },
    "q3_self_attention_module": {
        "squeeze() on the outputs (one sequence of one token loses its axes)": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        y, w = super().forward(x, mask)
        return y.squeeze(), w.squeeze()
""",
        "no biases": """
class SelfAttention(SelfAttention):
    def __init__(self, dim):
        super().__init__(dim)
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
""",
        "values not projected": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        return scaled_dot_product_attention(self.query(x), self.key(x), x, mask)
""",
        "queries used as keys": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        q = self.query(x)
        return scaled_dot_product_attention(q, q, self.value(x), mask)
""",
        "query and key roles swapped": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        return scaled_dot_product_attention(self.key(x), self.query(x), self.value(x), mask)
""",
        "mask not passed on": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        return scaled_dot_product_attention(self.query(x), self.key(x), self.value(x))
""",
        "unscaled scores": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        w = torch.softmax(self.query(x) @ self.key(x).transpose(-2, -1), dim=-1)
        return w @ self.value(x), w
""",
        "weight matrix applied untransposed (x W instead of x Wᵀ)": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        q = x @ self.query.weight + self.query.bias
        k = x @ self.key.weight + self.key.bias
        v = x @ self.value.weight + self.value.bias
        return scaled_dot_product_attention(q, k, v, mask)
""",
    },
    "q4_attention_classifier": {
        "squeeze() without an axis (a batch of one gives a 0-d tensor)": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids != 0
        y, _ = self.attention(self.embedding(ids), keep[:, None, :])
        pooled = (y * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return self.classifier(pooled).squeeze()
""",
        "mean over padding too": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        y, _ = self.attention(self.embedding(ids), (ids != 0)[:, None, :])
        return self.classifier(y.mean(dim=1)).squeeze(-1)
""",
        "attention not masked": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids != 0
        y, _ = self.attention(self.embedding(ids))
        pooled = (y * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return self.classifier(pooled).squeeze(-1)
""",
        "keeps the (batch, 1) shape": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids != 0
        y, _ = self.attention(self.embedding(ids), keep[:, None, :])
        return self.classifier((y * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True))
""",
        "sum instead of mean": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids != 0
        y, _ = self.attention(self.embedding(ids), keep[:, None, :])
        return self.classifier((y * keep.unsqueeze(-1)).sum(1)).squeeze(-1)
""",
        "skips the attention layer": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids != 0
        e = self.embedding(ids)
        return self.classifier((e * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)).squeeze(-1)
""",
        "mask polarity inverted (attends only to padding)": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids != 0
        y, _ = self.attention(self.embedding(ids), (~keep)[:, None, :] | ~keep.any(1)[:, None, None])
        return self.classifier((y * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)).squeeze(-1)
""",
    },
}


ALTERNATIVES = {
    "q1_simple_self_attention": {
        "einsum": """
def simple_self_attention(x):
    w = torch.einsum("bik,bjk->bij", x, x).softmax(-1)
    return torch.einsum("bij,bjk->bik", w, x), w
""",
        "bmm and F.softmax": """
def simple_self_attention(x):
    w = F.softmax(torch.bmm(x, x.transpose(1, 2)), dim=2)
    return torch.bmm(w, x), w
""",
        "lecture's transposed form Yᵀ = W Xᵀ": """
def simple_self_attention(x):
    X = x.transpose(1, 2)                      # (batch, k, t): tokens as columns, as in the lecture
    w = torch.softmax(X.transpose(1, 2) @ X, dim=-1)
    return (X @ w.transpose(1, 2)).transpose(1, 2), w
""",
    },
    "q2_scaled_dot_product": {
        "additive -inf mask": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = torch.matmul(q, k.transpose(-1, -2)) * q.size(-1) ** -0.5
    if mask is not None:
        s = s + torch.zeros_like(mask, dtype=s.dtype).masked_fill(~mask, float("-inf"))
    w = s.softmax(dim=-1)
    return torch.matmul(w, v), w
""",
        "einsum and most negative float": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = torch.einsum("...id,...jd->...ij", q / math.sqrt(q.shape[-1]), k)
    if mask is not None:
        s = torch.where(mask, s, torch.finfo(s.dtype).min)
    w = F.softmax(s, dim=-1)
    return torch.einsum("...ij,...jd->...id", w, v), w
""",
        "masked_fill with -1e9 and a stable manual softmax": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(mask.logical_not(), -1e9)
    e = torch.exp(s - s.amax(-1, keepdim=True))
    w = e / e.sum(-1, keepdim=True)
    return w @ v, w
""",
        "scaling q and k by k ** -0.25 each": """
def scaled_dot_product_attention(q, k, v, mask=None):
    f = q.shape[-1] ** -0.25
    s = (q * f) @ (k * f).transpose(-2, -1)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w
""",
    },
    "q3_self_attention_module": {
        "computes attention inline with einsum": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        q, k, v = self.query(x), self.key(x), self.value(x)
        s = torch.einsum("bid,bjd->bij", q, k) / math.sqrt(self.dim)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        w = s.softmax(-1)
        return torch.einsum("bij,bjd->bid", w, v), w
""",
        "F.linear with the layers' weights": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        q = F.linear(x, self.query.weight, self.query.bias)
        k = F.linear(x, self.key.weight, self.key.bias)
        v = F.linear(x, self.value.weight, self.value.bias)
        return scaled_dot_product_attention(q, k, v, mask)
""",
    },
    "q4_attention_classifier": {
        "padding mask of shape (batch, t, t) and a masked_fill mean": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids.ne(0)
        mask = keep.unsqueeze(1).expand(-1, ids.shape[1], -1)
        y, _ = self.attention(self.embedding(ids), mask)
        y = y.masked_fill(~keep.unsqueeze(-1), 0.0)
        return self.classifier(y.sum(1) / keep.sum(1, keepdim=True).float()).squeeze(-1)
""",
        "pooling with a weighted matmul": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = (ids > 0).float()
        y, _ = self.attention(self.embedding(ids), ids[:, None, :] > 0)
        pooled = torch.bmm((keep / keep.sum(1, keepdim=True)).unsqueeze(1), y).squeeze(1)
        return self.classifier(pooled)[:, 0]
""",
    },
}


# bugs of the kinds that used to pass (gradient flow, edge shapes); each must fail a test of its question
BEHAVIOUR_MISTAKES = {
    "q1_simple_self_attention": {
        "attention weights detached": """
def simple_self_attention(x):
    w = torch.softmax(x @ x.transpose(-2, -1), dim=-1).detach()
    return w @ x, w
""",
    },
    "q2_scaled_dot_product": {
        "scores computed under torch.no_grad (queries and keys never learn)": """
def scaled_dot_product_attention(q, k, v, mask=None):
    with torch.no_grad():
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "masked scores detached": """
def scaled_dot_product_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")).detach()
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
    },
    "q3_self_attention_module": {
        "keys detached": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        return scaled_dot_product_attention(self.query(x), self.key(x).detach(), self.value(x), mask)
""",
    },
    "q4_attention_classifier": {
        "mean over the real words plus one": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids != 0
        y, _ = self.attention(self.embedding(ids), keep[:, None, :])
        return self.classifier((y * keep.unsqueeze(-1)).sum(1) / (keep.sum(1, keepdim=True) + 1)).squeeze(-1)
""",
        "attention run under torch.no_grad": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        keep = ids != 0
        with torch.no_grad():
            y, _ = self.attention(self.embedding(ids), keep[:, None, :])
        return self.classifier((y * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)).squeeze(-1)
""",
    },
}
for _question, _variants in BEHAVIOUR_MISTAKES.items():
    MISTAKES.setdefault(_question, {}).update(_variants)


# correct implementations ported from public code (each written for this notebook's interface; the source is named above it)
PORTED = {
    "q1_simple_self_attention": {
        # Peter Bloem, "Transformers from scratch" (the lecture's notation): github.com/pbloem/former, former/modules.py
        # and peterbloem.nl/blog/transformers: raw_weights = bmm(x, xᵀ), softmax over dim 2, y = bmm(weights, x)
        "Bloem: bmm of raw weights, softmax over dim 2": """
def simple_self_attention(x):
    raw_weights = torch.bmm(x, x.transpose(1, 2))
    weights = F.softmax(raw_weights, dim=2)
    return torch.bmm(weights, x), weights
""",
        # PyTorch documentation, torch.nn.functional.scaled_dot_product_attention (its `scale` argument, here 1: no
        # scaling) for the output; the weights as in the documentation's reference implementation
        "PyTorch: F.scaled_dot_product_attention(x, x, x, scale=1.0)": """
def simple_self_attention(x):
    y = F.scaled_dot_product_attention(x, x, x, scale=1.0)
    attn_weight = torch.softmax(x @ x.transpose(-2, -1), dim=-1)
    return y, attn_weight
""",
    },
    "q2_scaled_dot_product": {
        # The Annotated Transformer, github.com/harvardnlp/annotated-transformer, the_annotated_transformer.py: attention()
        # (masked_fill(mask == 0, -1e9); our bool mask is True where attention is allowed, as theirs is 1)
        "Annotated Transformer: matmul, masked_fill(mask == 0, -1e9)": """
def scaled_dot_product_attention(q, k, v, mask=None):
    d_k = q.size(-1)
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)
    return torch.matmul(p_attn, v), p_attn
""",
        # PyTorch documentation of torch.nn.functional.scaled_dot_product_attention, "reference implementation": an
        # additive bias of 0 / -inf (built with the mask's shape, so that a (batch, 1, t_k) mask broadcasts)
        "PyTorch docs: reference implementation with an additive attn_bias": """
def scaled_dot_product_attention(q, k, v, mask=None):
    scale_factor = 1 / math.sqrt(q.size(-1))
    attn_weight = q @ k.transpose(-2, -1) * scale_factor
    if mask is not None:
        attn_bias = torch.zeros(mask.shape, dtype=q.dtype)
        attn_bias.masked_fill_(mask.logical_not(), float("-inf"))
        attn_weight = attn_weight + attn_bias
    attn_weight = torch.softmax(attn_weight, dim=-1)
    return attn_weight @ v, attn_weight
""",
        # minGPT, github.com/karpathy/minGPT, mingpt/model.py: CausalSelfAttention.forward (scores times
        # 1 / sqrt(k.size(-1)), masked_fill(mask == 0, float('-inf')), F.softmax), with the mask given instead of causal
        "minGPT: multiply by 1 / sqrt(k.size(-1)), masked_fill -inf": """
def scaled_dot_product_attention(q, k, v, mask=None):
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    if mask is not None:
        att = att.masked_fill(mask == 0, float("-inf"))
    att = F.softmax(att, dim=-1)
    return att @ v, att
""",
    },
    "q3_self_attention_module": {
        # Peter Bloem, github.com/pbloem/former, former/modules.py: SelfAttention with one head (queries and keys each
        # divided by the fourth root of the dimension instead of the scores by its square root; heads folded into bmm)
        "Bloem: one head, q and k scaled by dim ** (1/4), bmm": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        b, t, e = x.size()
        keys, queries, values = self.key(x), self.query(x), self.value(x)
        queries = queries / (e ** (1 / 4))
        keys = keys / (e ** (1 / 4))
        dot = torch.bmm(queries, keys.transpose(1, 2))
        if mask is not None:
            dot = dot.masked_fill(~mask, float("-inf"))
        dot = F.softmax(dot, dim=2)
        return torch.bmm(dot, values), dot
""",
        # Hugging Face transformers, src/transformers/models/bert/modeling_bert.py: BertSelfAttention with one head
        # (an additive "extended attention mask" of 0 / finfo.min, as get_extended_attention_mask builds it)
        "Hugging Face BERT: one head, additive (1 - mask) * finfo.min": """
class SelfAttention(SelfAttention):
    def forward(self, x, mask=None):
        query_layer, key_layer, value_layer = self.query(x), self.key(x), self.value(x)
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.dim)
        if mask is not None:
            extended = (1.0 - mask.to(attention_scores.dtype)) * torch.finfo(attention_scores.dtype).min
            attention_scores = attention_scores + extended
        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        return torch.matmul(attention_probs, value_layer), attention_probs
""",
    },
    "q4_attention_classifier": {
        # The Annotated Transformer (src_mask = (src != pad).unsqueeze(-2), Batch in the_annotated_transformer.py) and
        # sentence-transformers' mean pooling (github.com/UKPLab/sentence-transformers,
        # sentence_transformers/models/Pooling.py: sum(embeddings * mask) / clamp(mask.sum(1), min=1e-9))
        "Annotated Transformer src_mask, sentence-transformers mean pooling": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        src_mask = (ids != 0).unsqueeze(-2)
        token_embeddings, _ = self.attention(self.embedding(ids), src_mask)
        input_mask_expanded = (ids != 0).unsqueeze(-1).expand(token_embeddings.size()).float()
        pooled = torch.sum(token_embeddings * input_mask_expanded, 1) / torch.clamp(input_mask_expanded.sum(1), min=1e-9)
        return self.classifier(pooled).squeeze(-1)
""",
        # AllenNLP, github.com/allenai/allennlp, allennlp/nn/util.py: masked_mean (masked_fill(~mask, 0.0), sum, divided
        # by the count clamped at the dtype's tiny value)
        "AllenNLP masked_mean": """
class AttentionClassifier(AttentionClassifier):
    def forward(self, ids):
        mask = ids != 0
        vector, _ = self.attention(self.embedding(ids), mask[:, None, :])
        replaced_vector = vector.masked_fill(~mask.unsqueeze(-1), 0.0)
        value_sum = torch.sum(replaced_vector, dim=1)
        value_count = torch.sum(mask.unsqueeze(-1), dim=1)
        pooled = value_sum / value_count.float().clamp(min=torch.finfo(torch.float).tiny)
        return self.classifier(pooled).flatten()
""",
    },
}
for _question, _variants in PORTED.items():
    ALTERNATIVES.setdefault(_question, {}).update({f"ported: {k}": v for k, v in _variants.items()})


def test_at_least_eight_ported_alternatives():
    assert sum(len(v) for v in PORTED.values()) >= 8


(test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
 test_graded_in_another_process_alike) = standard_tests(A, MISTAKES, ALTERNATIVES)
