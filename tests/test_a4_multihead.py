"""Assignment 4: the reference passes every test; each typical mistake fails at least one test of its
question; different correct implementations (fused or separate projections, einsum, additive masks) pass."""

from autograder.masters import load
from mistake_checks import standard_tests

A = "a4_multihead"


def test_every_question_has_hidden_tests():
    for question, tests in load(A).tests.items():
        assert any(t.hidden for t in tests) and any(not t.hidden for t in tests), question


def test_reference_has_no_python_loop_over_heads():
    source = "\n".join(load(A).solution_cells)
    forward = source[source.index("class MultiHeadSelfAttention"):]
    assert "for " not in forward.split("def forward", 1)[1].split("# END SOLUTION")[0].replace(
        "for part in self.qkv", ""), "the reference forward must process all heads at once"


# a correct forward, parameterised below by one wrong piece at a time
_FORWARD = """
class MultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x, mask=None):
        b, t, d = x.shape
        h, dh = self.num_heads, self.head_dim
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = [{split} for p in (q, k, v)]
        s = q @ k.transpose(-2, -1) / {scale}
        if mask is not None:
            s = s.masked_fill({masked}, float("-inf"))
        w = torch.softmax(s, dim={axis})
        y = {merge}
        return {out}, w
"""
_OK = dict(split="p.view(b, t, h, dh).transpose(1, 2)", scale="math.sqrt(dh)", masked="~mask[:, None, None, :]",
           axis="-1", merge="(w @ v).transpose(1, 2).reshape(b, t, d)", out="self.out(y)")


def _forward(**wrong):
    return _FORWARD.format(**{**_OK, **wrong})


MISTAKES = {
    "q1_split_heads": {
        "view(b, h, t, d) without transpose": """
def split_heads(x, num_heads):
    b, t, d = x.shape
    return x.view(b, num_heads, t, d // num_heads)
""",
        "view(b, t, h, d) without moving the head axis": """
def split_heads(x, num_heads):
    b, t, d = x.shape
    return x.view(b, t, num_heads, d // num_heads)
""",
        "heads interleaved (view(b, t, d_head, h))": """
def split_heads(x, num_heads):
    b, t, d = x.shape
    return x.view(b, t, d // num_heads, num_heads).permute(0, 3, 1, 2)
""",
        "d_head and h swapped": """
def split_heads(x, num_heads):
    b, t, d = x.shape
    return x.view(b, t, d // num_heads, num_heads).transpose(1, 2)
""",
    },
    "q2_merge_heads": {
        "reshape without transpose": """
def merge_heads(x):
    b, h, t, dh = x.shape
    return x.reshape(b, t, h * dh)
""",
        "heads interleaved": """
def merge_heads(x):
    b, h, t, dh = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, t, h * dh)
""",
        "averages the heads": """
def merge_heads(x):
    return x.mean(dim=1)
""",
    },
    "q3_multihead_module": {
        "scale by sqrt(d_model) instead of sqrt(d_head)": _forward(scale="math.sqrt(d)"),
        "divide by d_head instead of sqrt(d_head)": _forward(scale="dh"),
        "no scaling": _forward(scale="1.0"),
        "softmax over the queries": _forward(axis="-2"),
        "softmax over the heads": _forward(axis="1"),
        "heads reshaped in the wrong order (view(b, h, t, d))": _forward(split="p.view(b, h, t, dh)"),
        "merge without transposing back": _forward(merge="(w @ v).reshape(b, t, d)"),
        "forgets the output projection": _forward(out="y"),
        "mask polarity inverted (nn.MultiheadAttention's convention)": _forward(masked="mask[:, None, None, :]"),
        "mask over queries instead of keys": _forward(masked="~mask[:, None, :, None] & mask.any(1)[:, None, None, None]"),
        "mask ignored": _forward(masked="torch.zeros_like(s, dtype=torch.bool)"),
        "q, k, v taken in the wrong order from the fused projection": """
class MultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x, mask=None):
        k, q, v = (split_heads(p, self.num_heads) for p in self.qkv(x).chunk(3, dim=-1))
        s = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if mask is not None:
            s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        w = s.softmax(-1)
        return self.out(merge_heads(w @ v)), w
""",
        "fused projection split per head instead of per q/k/v": """
class MultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x, mask=None):
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, self.num_heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=-1)
        s = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if mask is not None:
            s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        w = s.softmax(-1)
        return self.out(merge_heads(w @ v)), w
""",
        "one shared attention pattern for all heads (weights averaged)": """
class MultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x, mask=None):
        q, k, v = (split_heads(p, self.num_heads) for p in self.qkv(x).chunk(3, dim=-1))
        s = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if mask is not None:
            s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        w = s.softmax(-1).mean(1, keepdim=True).expand_as(s)
        return self.out(merge_heads(w @ v)), w
""",
        "projection layers without biases": """
_Base = MultiHeadSelfAttention
class MultiHeadSelfAttention(_Base):
    def __init__(self, dim, num_heads):
        super().__init__(dim, num_heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
""",
    },
}


ALTERNATIVES = {
    "q1_split_heads": {
        "reshape and permute": """
def split_heads(x, num_heads):
    return x.reshape(x.shape[0], x.shape[1], num_heads, -1).permute(0, 2, 1, 3)
""",
        "unflatten and movedim": """
def split_heads(x, num_heads):
    return x.unflatten(-1, (num_heads, -1)).movedim(2, 1)
""",
        "stack of chunks": """
def split_heads(x, num_heads):
    return torch.stack(x.chunk(num_heads, dim=-1), dim=1)
""",
    },
    "q2_merge_heads": {
        "permute and flatten": """
def merge_heads(x):
    return x.permute(0, 2, 1, 3).flatten(2)
""",
        "contiguous view": """
def merge_heads(x):
    b, h, t, dh = x.shape
    return x.transpose(1, 2).contiguous().view(b, t, h * dh)
""",
        "cat of the heads": """
def merge_heads(x):
    return torch.cat(x.unbind(1), dim=-1)
""",
    },
    "q3_multihead_module": {
        "separate query/key/value layers and einsum": """
class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, t, d = x.shape
        h = self.num_heads
        q = self.query(x).view(b, t, h, -1)
        k = self.key(x).view(b, t, h, -1)
        v = self.value(x).view(b, t, h, -1)
        s = torch.einsum("bihd,bjhd->bhij", q, k) / self.head_dim ** 0.5
        if mask is not None:
            s = s + torch.zeros(b, 1, 1, t).masked_fill(~mask[:, None, None, :], float("-inf"))
        w = s.softmax(-1)
        return self.out(torch.einsum("bhij,bjhd->bihd", w, v).reshape(b, t, d)), w
""",
        "bmm on (batch * heads) and finfo.min mask": """
class MultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x, mask=None):
        b, t, d = x.shape
        h, dh = self.num_heads, self.head_dim
        q, k, v = (p.view(b, t, h, dh).transpose(1, 2).reshape(b * h, t, dh) for p in self.qkv(x).split(d, dim=-1))
        s = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(dh)
        if mask is not None:
            keep = mask[:, None, None, :].expand(b, h, 1, t).reshape(b * h, 1, t)
            s = torch.where(keep, s, torch.finfo(s.dtype).min)
        w = F.softmax(s, dim=-1)
        y = torch.bmm(w, v).view(b, h, t, dh).transpose(1, 2).reshape(b, t, d)
        return self.out(y), w.view(b, h, t, t)
""",
        "torch's scaled_dot_product_attention for the output": """
class MultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x, mask=None):
        q, k, v = (split_heads(p, self.num_heads) for p in self.qkv(x).chunk(3, dim=-1))
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        s = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if mask is not None:
            s = s.masked_fill(~attn_mask, float("-inf"))
        return self.out(merge_heads(y)), s.softmax(-1)
""",
        "F.linear with separate weights and keys scaled before the product": """
class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, mask=None):
        h = self.num_heads
        q = split_heads(F.linear(x, self.query.weight, self.query.bias), h)
        k = split_heads(F.linear(x, self.key.weight, self.key.bias), h) * self.head_dim ** -0.5
        v = split_heads(F.linear(x, self.value.weight, self.value.bias), h)
        s = torch.matmul(q, k.transpose(2, 3))
        if mask is not None:
            s = s.masked_fill(mask.logical_not().view(mask.shape[0], 1, 1, -1), -1e9)
        w = s.softmax(dim=3)
        return self.out(merge_heads(torch.matmul(w, v))), w
""",
    },
}

# correct although it never calls self.out as a module: a test that replaced self.out by nn.Identity() failed it
ALTERNATIVES["q3_multihead_module"]["output projection with F.linear on self.out's parameters"] = """
class MultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x, mask=None):
        q, k, v = (split_heads(p, self.num_heads) for p in self.qkv(x).chunk(3, dim=-1))
        s = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if mask is not None:
            s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        w = s.softmax(-1)
        return F.linear(merge_heads(w @ v), self.out.weight, self.out.bias), w
"""

# bugs of the kinds that used to pass (gradient flow); each must fail a test of its question
BEHAVIOUR_MISTAKES = {
    "q3_multihead_module": {
        "attention weights detached": _forward().replace("w = torch.softmax(s, dim=-1)", "w = torch.softmax(s, dim=-1).detach()"),
        "scores computed under torch.no_grad": _forward().replace(
            "        s = q @ k.transpose(-2, -1) / math.sqrt(dh)",
            "        with torch.no_grad():\n            s = q @ k.transpose(-2, -1) / math.sqrt(dh)"),
    },
}
for _question, _variants in BEHAVIOUR_MISTAKES.items():
    MISTAKES.setdefault(_question, {}).update(_variants)


# correct implementations ported from public code (each written for this notebook's interface; the source is named above it)
PORTED = {
    "q1_split_heads": {
        # Hugging Face transformers, src/transformers/models/bert/modeling_bert.py: BertSelfAttention.transpose_for_scores
        "Hugging Face BERT transpose_for_scores": """
def split_heads(x, num_heads):
    new_x_shape = x.size()[:-1] + (num_heads, x.size(-1) // num_heads)
    x = x.view(new_x_shape)
    return x.permute(0, 2, 1, 3)
""",
    },
    "q2_merge_heads": {
        # Hugging Face transformers, src/transformers/models/bert/modeling_bert.py: BertSelfAttention.forward's
        # context_layer.permute(0, 2, 1, 3).contiguous() viewed as size()[:-2] + (all_head_size,)
        "Hugging Face BERT context_layer merge": """
def merge_heads(x):
    context_layer = x.permute(0, 2, 1, 3).contiguous()
    new_context_layer_shape = context_layer.size()[:-2] + (context_layer.size(-2) * context_layer.size(-1),)
    return context_layer.view(new_context_layer_shape)
""",
        # Dive into Deep Learning, github.com/d2l-ai/d2l-en, chapter_attention-mechanisms-and-transformers/
        # multihead-attention.md: transpose_output (here the heads arrive as their own axis, not folded into the batch)
        "d2l transpose_output": """
def merge_heads(x):
    x = x.permute(0, 2, 1, 3)
    return x.reshape(x.shape[0], x.shape[1], -1)
""",
    },
    "q3_multihead_module": {
        # The Annotated Transformer, github.com/harvardnlp/annotated-transformer, the_annotated_transformer.py:
        # MultiHeadedAttention (four linears: query, key, value, out) with its attention() (masked_fill(mask == 0, -1e9))
        "Annotated Transformer MultiHeadedAttention": """
class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        assert dim % num_heads == 0
        self.d_k, self.h = dim // num_heads, num_heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, mask=None):
        if mask is not None:
            mask = mask[:, None, None, :]  # the same mask for all heads and all queries
        nbatches = x.size(0)
        query, key, value = [lin(x).view(nbatches, -1, self.h, self.d_k).transpose(1, 2)
                             for lin in (self.query, self.key, self.value)]
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        p_attn = scores.softmax(dim=-1)
        y = torch.matmul(p_attn, value).transpose(1, 2).contiguous().view(nbatches, -1, self.h * self.d_k)
        return self.out(y), p_attn
""",
        # minGPT, github.com/karpathy/minGPT, mingpt/model.py: CausalSelfAttention without the causal mask (key, query,
        # value and an output projection, named out here), scores times 1 / sqrt(k.size(-1))
        "minGPT CausalSelfAttention without the causal mask": """
class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.key, self.query, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.n_head = num_heads

    def forward(self, x, mask=None):
        B, T, C = x.size()
        k = self.key(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = self.query(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if mask is not None:
            att = att.masked_fill(mask.view(B, 1, 1, T) == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.out(y), att
""",
        # timm (PyTorch Image Models), github.com/huggingface/pytorch-image-models, timm/models/vision_transformer.py:
        # Attention (qkv reshaped to (B, N, 3, heads, head_dim) and permuted, q * scale), plus our padding mask
        "timm Attention: qkv reshape and permute(2, 0, 3, 1, 4)": """
class MultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x, mask=None):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.head_dim ** -0.5
        attn = q @ k.transpose(-2, -1)
        if mask is not None:
            attn = attn.masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.out(x), attn
""",
        # Peter Bloem, github.com/pbloem/former, former/modules.py: SelfAttention (heads folded into the batch for bmm,
        # queries and keys each divided by a fourth root); with biases as this notebook asks, and the fourth root of
        # the head size (former divides by the fourth root of the whole embedding)
        "Bloem SelfAttention: heads folded into the batch, bmm": """
class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.emb, self.heads = dim, num_heads
        self.key, self.query, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, t, e = x.size()
        h = self.heads
        s = e // h
        keys = self.key(x).view(b, t, h, s).transpose(1, 2).contiguous().view(b * h, t, s)
        queries = self.query(x).view(b, t, h, s).transpose(1, 2).contiguous().view(b * h, t, s)
        values = self.value(x).view(b, t, h, s).transpose(1, 2).contiguous().view(b * h, t, s)
        queries = queries / (s ** (1 / 4))
        keys = keys / (s ** (1 / 4))
        dot = torch.bmm(queries, keys.transpose(1, 2))
        if mask is not None:
            dot = dot.masked_fill(~mask.repeat_interleave(h, dim=0)[:, None, :], float("-inf"))
        dot = F.softmax(dot, dim=2)
        out = torch.bmm(dot, values).view(b, h, t, s)
        out = out.transpose(1, 2).contiguous().view(b, t, s * h)
        return self.out(out), dot.view(b, h, t, t)
""",
        # Hugging Face transformers, src/transformers/models/bert/modeling_bert.py: BertSelfAttention (transpose_for_scores,
        # an additive extended attention mask of finfo.min, scores / sqrt(attention_head_size)) with an output dense
        "Hugging Face BERT self-attention with an additive extended mask": """
class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_attention_heads, self.attention_head_size = num_heads, dim // num_heads
        self.query, self.key, self.value, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def transpose_for_scores(self, x):
        x = x.view(x.size()[:-1] + (self.num_attention_heads, self.attention_head_size))
        return x.permute(0, 2, 1, 3)

    def forward(self, x, mask=None):
        query_layer = self.transpose_for_scores(self.query(x))
        key_layer = self.transpose_for_scores(self.key(x))
        value_layer = self.transpose_for_scores(self.value(x))
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        if mask is not None:
            extended = (1.0 - mask[:, None, None, :].to(attention_scores.dtype)) * torch.finfo(attention_scores.dtype).min
            attention_scores = attention_scores + extended
        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        context_layer = torch.matmul(attention_probs, value_layer).permute(0, 2, 1, 3).contiguous()
        context_layer = context_layer.view(context_layer.size()[:-2] + (x.size(-1),))
        return self.out(context_layer), attention_probs
""",
    },
}
for _question, _variants in PORTED.items():
    ALTERNATIVES.setdefault(_question, {}).update({f"ported: {k}": v for k, v in _variants.items()})


def test_at_least_eight_ported_alternatives():
    assert sum(len(v) for v in PORTED.values()) >= 8


(test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
 test_graded_in_another_process_alike) = standard_tests(A, MISTAKES, ALTERNATIVES)
