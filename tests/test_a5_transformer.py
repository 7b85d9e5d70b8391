"""Assignment 5: the reference passes every test; each typical mistake fails at least one test;
different correct implementations pass."""

from mistake_checks import standard_tests

A = "a5_transformer"


# a block written by hand (no nn.MultiheadAttention); `SCALE` and `MASK` let mistakes vary it
_HAND_BLOCK = """
class _SelfAttention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d))
        nn.init.xavier_uniform_(self.in_proj_weight)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, mask=None):
        b, n, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(d, dim=-1)
        q, k, v = (t.reshape(b, n, self.h, d // self.h).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / SCALE(d, self.h)
        if mask is not None:
            scores = scores.masked_fill(MASK(mask)[:, None, None, :], float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(out)

class TransformerBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = _SelfAttention(d_model, num_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = x + self.dropout(self.attn(self.norm1(x), mask))
        return x + self.dropout(self.ffn(self.norm2(x)))
"""
_RIGHT = "SCALE = lambda d, h: math.sqrt(d // h)\nMASK = lambda m: ~m\n"

# the reference block's __init__, with a forward that a mistake replaces
_BLOCK_INIT = """
class TransformerBlock(TransformerBlock):
"""

MISTAKES = {
    "q1_positional_encoding": {
        "sin and cos swapped": """
def positional_encoding(max_len, d_model):
    pos = torch.arange(max_len).float()[:, None]
    freq = 10000 ** (torch.arange(0, d_model, 2).float() / d_model)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.cos(pos / freq)
    pe[:, 1::2] = torch.sin(pos / freq)
    return pe
""",
        "exponent i/d instead of 2i/d": """
def positional_encoding(max_len, d_model):
    pos = torch.arange(max_len).float()[:, None]
    freq = 10000 ** (torch.arange(d_model // 2).float() / d_model)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos / freq)
    pe[:, 1::2] = torch.cos(pos / freq)
    return pe
""",
        "column index as exponent (cos column gets its own frequency)": """
def positional_encoding(max_len, d_model):
    pe = torch.zeros(max_len, d_model)
    for pos in range(max_len):
        for j in range(d_model):
            angle = pos / 10000 ** (j / d_model)
            pe[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return pe
""",
        "sines first, cosines after (not interleaved)": """
def positional_encoding(max_len, d_model):
    pos = torch.arange(max_len).float()[:, None]
    freq = 10000 ** (torch.arange(0, d_model, 2).float() / d_model)
    return torch.cat([torch.sin(pos / freq), torch.cos(pos / freq)], dim=1)
""",
        "positions start at 1": """
def positional_encoding(max_len, d_model):
    pos = torch.arange(1, max_len + 1).float()[:, None]
    freq = 10000 ** (torch.arange(0, d_model, 2).float() / d_model)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos / freq)
    pe[:, 1::2] = torch.cos(pos / freq)
    return pe
""",
        "multiplies by the frequency term instead of dividing": """
def positional_encoding(max_len, d_model):
    pos = torch.arange(max_len).float()[:, None]
    freq = 10000 ** (torch.arange(0, d_model, 2).float() / d_model)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe
""",
        "float64 result": """
def positional_encoding(max_len, d_model):
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    freq = 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos / freq)
    pe[:, 1::2] = torch.cos(pos / freq)
    return pe
""",
    },
    "q2_transformer_block": {
        "no residual around attention": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = self.dropout(self.attn(y, y, y, key_padding_mask=None if mask is None else ~mask)[0])
        return x + self.dropout(self.ffn(self.norm2(x)))
""",
        "no residual around the feed-forward network": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = x + self.dropout(self.attn(y, y, y, key_padding_mask=None if mask is None else ~mask)[0])
        return self.dropout(self.ffn(self.norm2(x)))
""",
        "post-norm (layer norm after the residual sum)": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.attn(x, x, x, key_padding_mask=None if mask is None else ~mask)[0]))
        return self.norm2(x + self.dropout(self.ffn(x)))
""",
        "residual adds the normalised input": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        x = self.norm1(x)
        x = x + self.dropout(self.attn(x, x, x, key_padding_mask=None if mask is None else ~mask)[0])
        x = self.norm2(x)
        return x + self.dropout(self.ffn(x))
""",
        "padding mask ignored": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = x + self.dropout(self.attn(y, y, y)[0])
        return x + self.dropout(self.ffn(self.norm2(x)))
""",
        "course mask given unconverted to key_padding_mask (True = a real token ignored)": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = x + self.dropout(self.attn(y, y, y, key_padding_mask=mask)[0])
        return x + self.dropout(self.ffn(self.norm2(x)))
""",
        "mask polarity inverted for SDPA (attn_mask = ~mask, as if it were key_padding_mask)": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        b, n, d = x.shape
        h = self.attn.num_heads
        q, k, v = F.linear(self.norm1(x), self.attn.in_proj_weight, self.attn.in_proj_bias).split(d, dim=-1)
        q, k, v = (t.reshape(b, n, h, d // h).transpose(1, 2) for t in (q, k, v))
        allowed = None if mask is None else ~mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + self.dropout(self.attn.out_proj(out.transpose(1, 2).reshape(b, n, d)))
        return x + self.dropout(self.ffn(self.norm2(x)))
""",
        "hand-written attention scaled by sqrt(d_model)": _HAND_BLOCK + "SCALE = lambda d, h: math.sqrt(d)\nMASK = lambda m: ~m\n",
        "hand-written attention, mask polarity inverted (real tokens masked out)": _HAND_BLOCK + "SCALE = lambda d, h: math.sqrt(d // h)\nMASK = lambda m: m\n",
        "no layer norm before the feed-forward network": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = x + self.dropout(self.attn(y, y, y, key_padding_mask=None if mask is None else ~mask)[0])
        return x + self.dropout(self.ffn(x))
""",
    },
    "q3_classifier": {
        "positions not added": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.dropout(self.embedding(ids) * math.sqrt(self.embedding.embedding_dim))
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        keep = mask.unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1)).squeeze(-1)
""",
        "mean over padding": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.dropout(self.embedding(ids) * math.sqrt(self.embedding.embedding_dim) + self.positions[: ids.shape[1]])
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm(x).mean(dim=1)).squeeze(-1)
""",
        "blocks given the inverted mask (True = padding, as key_padding_mask wants)": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        padding = ~mask
        x = self.dropout(self.embedding(ids) * math.sqrt(self.embedding.embedding_dim) + self.positions[: ids.shape[1]])
        for block in self.blocks:
            x = block(x, padding)
        x = self.norm(x)
        keep = mask.unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1)).squeeze(-1)
""",
        "mask not passed to the blocks": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.dropout(self.embedding(ids) * math.sqrt(self.embedding.embedding_dim) + self.positions[: ids.shape[1]])
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        keep = mask.unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1)).squeeze(-1)
""",
        "padding found as token id 0 (unknown words dropped too)": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        return super().forward(ids, ids != 0)
""",
        "default N(0, 1) embedding initialisation": """
_Base = TransformerClassifier
class TransformerClassifier(_Base):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        nn.init.normal_(self.embedding.weight, std=1.0)
""",
        "embeddings not multiplied by sqrt(d_model)": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.dropout(self.embedding(ids) + self.positions[: ids.shape[1]])
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        keep = mask.unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1)).squeeze(-1)
""",
        "no final layer norm": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.dropout(self.embedding(ids) * math.sqrt(self.embedding.embedding_dim) + self.positions[: ids.shape[1]])
        for block in self.blocks:
            x = block(x, mask)
        keep = mask.unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1)).squeeze(-1)
""",
        "returns probabilities": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        return torch.sigmoid(super().forward(ids, mask))
""",
        "keeps the (batch, 1) shape": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        return super().forward(ids, mask).unsqueeze(-1)
""",
        "positional encoding stored as a weight (persistent buffer)": """
_Base = TransformerClassifier
class TransformerClassifier(_Base):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        positions = self.positions
        del self.positions
        self.register_buffer("positions", positions)
""",
        "no dropout": """
_Base = TransformerClassifier
class TransformerClassifier(_Base):
    def __init__(self, vocab_size, max_len, d_model, num_heads, d_ff, num_blocks=1, dropout=0.1):
        super().__init__(vocab_size, max_len, d_model, num_heads, d_ff, num_blocks, 0.0)
""",
    },
}


ALTERNATIVES = {
    "q1_positional_encoding": {
        "double loop over positions and pairs": """
def positional_encoding(max_len, d_model):
    pe = torch.zeros(max_len, d_model)
    for pos in range(max_len):
        for i in range(0, d_model, 2):
            pe[pos, i] = math.sin(pos / 10000 ** (i / d_model))
            pe[pos, i + 1] = math.cos(pos / 10000 ** (i / d_model))
    return pe
""",
        "exp-log frequencies in float32 (common tutorial form)": """
def positional_encoding(max_len, d_model):
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe
""",
        "stack and reshape to interleave": """
def positional_encoding(max_len, d_model):
    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(d_model // 2)[None, :] * 2 / d_model)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(max_len, d_model).float()
""",
        "numpy": """
def positional_encoding(max_len, d_model):
    pos = np.arange(max_len)[:, None]
    i = np.arange(d_model)[None, :]
    angle = pos / np.power(10000, (2 * (i // 2)) / d_model)
    angle[:, 0::2] = np.sin(angle[:, 0::2])
    angle[:, 1::2] = np.cos(angle[:, 1::2])
    return torch.tensor(angle, dtype=torch.float32)
""",
    },
    "q2_transformer_block": {
        "hand-written attention module (softmax by hand)": _HAND_BLOCK + _RIGHT,
        "F.scaled_dot_product_attention on nn.MultiheadAttention's parameters": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        b, n, d = x.shape
        h = self.attn.num_heads
        q, k, v = F.linear(self.norm1(x), self.attn.in_proj_weight, self.attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.view(b, n, h, d // h).transpose(1, 2) for t in (q, k, v))
        allowed = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.attn.dropout if self.training else 0.0)
        x = x + self.dropout(self.attn.out_proj(out.transpose(1, 2).reshape(b, n, d)))
        return x + self.dropout(self.ffn(self.norm2(x)))
""",
        "nn.MultiheadAttention with attention weights returned": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        h = self.norm1(x)
        out, weights = self.attn(h, h, h, key_padding_mask=None if mask is None else ~mask)
        h = x + self.dropout(out)
        return h + self.dropout(self.ffn(self.norm2(h)))
""",
        "float additive mask": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        h = self.norm1(x)
        additive = None if mask is None else torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
        x = x + self.dropout(self.attn(h, h, h, key_padding_mask=additive, need_weights=False)[0])
        return x + self.dropout(self.ffn(self.norm2(x)))
""",
    },
    "q3_classifier": {
        "masked_fill pooling and trunc_normal init": """
_Base = TransformerClassifier
class TransformerClassifier(_Base):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        nn.init.trunc_normal_(self.embedding.weight, std=0.02)

    def forward(self, ids, mask):
        x = self.embedding(ids) * self.embedding.weight.shape[1] ** 0.5 + self.positions[: ids.size(1)].unsqueeze(0)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, mask=mask)
        x = self.norm(x).masked_fill(~mask.unsqueeze(-1), 0.0)
        lengths = mask.sum(dim=1, keepdim=True)
        return self.head(x.sum(dim=1) / lengths)[:, 0]
""",
        "torch.where pooling with a float weight": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.dropout(self.embedding(ids) * math.sqrt(self.embedding.embedding_dim) + self.positions[: ids.shape[1]])
        for block in self.blocks:
            x = block(x, mask)
        x = torch.where(mask[..., None], self.norm(x), torch.zeros_like(x))
        weight = mask.float() / mask.float().sum(dim=1, keepdim=True)
        return self.head(torch.einsum("bn,bnd->bd", weight, x)).flatten()
""",
        "works with the hand-written block": _HAND_BLOCK + _RIGHT,
    },
}


# bugs of the kinds that used to pass (training mode, gradient flow, edge shapes); each must fail a test of its question
BEHAVIOUR_MISTAKES = {
    "q2_transformer_block": {
        "dropout never applied to the sub-layers' outputs": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = x + self.attn(y, y, y, key_padding_mask=None if mask is None else ~mask, need_weights=False)[0]
        return x + self.ffn(self.norm2(x))
""",
        "dropout rate ignored (always 0.1)": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = x + F.dropout(self.attn(y, y, y, key_padding_mask=None if mask is None else ~mask, need_weights=False)[0], 0.1, self.training)
        return x + F.dropout(self.ffn(self.norm2(x)), 0.1, self.training)
""",
        "dropout in eval mode too": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = x + F.dropout(self.attn(y, y, y, key_padding_mask=None if mask is None else ~mask, need_weights=False)[0], self.dropout.p, True)
        return x + F.dropout(self.ffn(self.norm2(x)), self.dropout.p, True)
""",
        "normalised input detached": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x).detach()
        x = x + self.dropout(self.attn(y, y, y, key_padding_mask=None if mask is None else ~mask, need_weights=False)[0])
        return x + self.dropout(self.ffn(self.norm2(x)))
""",
    },
    "q3_classifier": {
        "blocks built without the dropout rate (always their default 0.1)": """
_Base = TransformerClassifier
class TransformerClassifier(_Base):
    def __init__(self, vocab_size, max_len, d_model, num_heads, d_ff, num_blocks=1, dropout=0.1):
        super().__init__(vocab_size, max_len, d_model, num_heads, d_ff, num_blocks, dropout)
        self.blocks = nn.ModuleList([TransformerBlock(d_model, num_heads, d_ff) for _ in range(num_blocks)])
""",
        "no dropout after the positions": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.embedding(ids) * math.sqrt(self.embedding.embedding_dim) + self.positions[: ids.shape[1]]
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        keep = mask.unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1)).squeeze(-1)
""",
        "embeddings detached (the embedding never learns)": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.dropout(self.embedding(ids).detach() * math.sqrt(self.embedding.embedding_dim) + self.positions[: ids.shape[1]])
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        keep = mask.unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1)).squeeze(-1)
""",
        "count of real tokens clamped at 2": """
class TransformerClassifier(TransformerClassifier):
    def forward(self, ids, mask):
        x = self.dropout(self.embedding(ids) * math.sqrt(self.embedding.embedding_dim) + self.positions[: ids.shape[1]])
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        keep = mask.unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1).clamp(min=2)).squeeze(-1)
""",
    },
}
for _question, _variants in BEHAVIOUR_MISTAKES.items():
    MISTAKES.setdefault(_question, {}).update(_variants)


# correct implementations ported from public code (each written for this notebook's interface; the source is named above it)
PORTED = {
    "q1_positional_encoding": {
        # CS231n assignment 3 (cs231n.github.io/assignments2024/assignment3), transformer_layers.py: PositionalEncoding
        # (pe of shape (1, max_len, embed_dim), pows = 10000 ** (-arange(0, d, 2) / d)); here its only row of encodings
        "CS231n PositionalEncoding": """
def positional_encoding(max_len, d_model):
    pe = torch.zeros(1, max_len, d_model)
    i = torch.arange(max_len)[:, None]
    pows = torch.pow(10000, -torch.arange(0, d_model, 2) / d_model)
    pe[0, :, 0::2] = torch.sin(i * pows)
    pe[0, :, 1::2] = torch.cos(i * pows)
    return pe[0]
""",
        # PyTorch tutorials, github.com/pytorch/tutorials, beginner_source/transformer_tutorial.py: PositionalEncoding
        # (sequence-first pe of shape (max_len, 1, d_model), div_term = exp(arange(0, d, 2) * -log(10000) / d))
        "PyTorch tutorial PositionalEncoding (max_len, 1, d_model)": """
def positional_encoding(max_len, d_model):
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, 1, d_model)
    pe[:, 0, 0::2] = torch.sin(position * div_term)
    pe[:, 0, 1::2] = torch.cos(position * div_term)
    return pe[:, 0, :]
""",
        # KerasNLP, github.com/keras-team/keras-nlp, keras_nlp/layers/modeling/sine_position_encoding.py:
        # SinePositionEncoding (timescales min_freq ** (2 * (i // 2) / d), interleaved by a 0/1 cos mask)
        "KerasNLP SinePositionEncoding with sin/cos masks": """
def positional_encoding(max_len, d_model, max_wavelength=10000):
    positions = torch.arange(max_len, dtype=torch.float32)
    min_freq = 1.0 / max_wavelength
    timescales = torch.pow(torch.tensor(min_freq), (2 * (torch.arange(d_model) // 2)).float() / d_model)
    angles = positions[:, None] * timescales[None, :]
    cos_mask = (torch.arange(d_model) % 2).float()
    sin_mask = 1 - cos_mask
    return torch.sin(angles) * sin_mask + torch.cos(angles) * cos_mask
""",
    },
    "q2_transformer_block": {
        # The Annotated Transformer, github.com/harvardnlp/annotated-transformer, the_annotated_transformer.py:
        # SublayerConnection (x + dropout(sublayer(norm(x))): its pre-norm form) and EncoderLayer.forward
        "Annotated Transformer SublayerConnection": _BLOCK_INIT + """
    def sublayer(self, x, norm, sublayer):
        return x + self.dropout(sublayer(norm(x)))

    def forward(self, x, mask=None):
        x = self.sublayer(x, self.norm1, lambda x: self.attn(x, x, x, key_padding_mask=None if mask is None else ~mask)[0])
        return self.sublayer(x, self.norm2, self.ffn)
""",
        # PyTorch, torch/nn/modules/transformer.py: TransformerEncoderLayer with norm_first=True (_sa_block and _ff_block,
        # each ending in a dropout; its extra dropout inside the feed-forward network is not in this notebook's formula)
        "PyTorch TransformerEncoderLayer (norm_first) _sa_block / _ff_block": _BLOCK_INIT + """
    def _sa_block(self, x, attn_mask, key_padding_mask):
        x = self.attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False)[0]
        return self.dropout(x)

    def _ff_block(self, x):
        return self.dropout(self.ffn[2](self.ffn[1](self.ffn[0](x))))

    def forward(self, x, mask=None):
        x = x + self._sa_block(self.norm1(x), None, None if mask is None else ~mask)
        x = x + self._ff_block(self.norm2(x))
        return x
""",
        # PyTorch, torch/nn/functional.py: multi_head_attention_forward, the function nn.MultiheadAttention calls,
        # on the block's own parameters (sequence-first, hence the transposes)
        "F.multi_head_attention_forward on the block's parameters": _BLOCK_INIT + """
    def forward(self, x, mask=None):
        y = self.norm1(x).transpose(0, 1)
        attended, _ = F.multi_head_attention_forward(
            y, y, y, self.attn.embed_dim, self.attn.num_heads, self.attn.in_proj_weight, self.attn.in_proj_bias,
            None, None, False, self.attn.dropout, self.attn.out_proj.weight, self.attn.out_proj.bias,
            training=self.training, key_padding_mask=None if mask is None else ~mask, need_weights=False)
        x = x + self.dropout(attended.transpose(0, 1))
        return x + self.dropout(self.ffn(self.norm2(x)))
""",
    },
    "q3_classifier": {
        # The Annotated Transformer, github.com/harvardnlp/annotated-transformer, the_annotated_transformer.py: Embeddings
        # (lut(x) * sqrt(d_model)), PositionalEncoding (a (1, max_len, d_model) buffer, x + pe[:, :x.size(1)], then
        # dropout) and Encoder (layers, then a final norm), with sentence-transformers' masked mean pooling
        # (github.com/UKPLab/sentence-transformers, sentence_transformers/models/Pooling.py)
        "Annotated Transformer embeddings, (1, max_len, d) positions buffer, Encoder": """
_Base = TransformerClassifier
class TransformerClassifier(_Base):
    def __init__(self, vocab_size, max_len, d_model, num_heads, d_ff, num_blocks=1, dropout=0.1):
        super().__init__(vocab_size, max_len, d_model, num_heads, d_ff, num_blocks, dropout)
        self.d_model = d_model
        self.register_buffer("positions", positional_encoding(max_len, d_model).unsqueeze(0), persistent=False)

    def forward(self, ids, mask):
        x = self.embedding(ids) * math.sqrt(self.d_model)
        x = self.dropout(x + self.positions[:, : x.size(1)].requires_grad_(False))
        for layer in self.blocks:
            x = layer(x, mask)
        token_embeddings = self.norm(x)
        input_mask_expanded = mask.unsqueeze(-1).expand(token_embeddings.size()).float()
        pooled = torch.sum(token_embeddings * input_mask_expanded, 1) / torch.clamp(input_mask_expanded.sum(1), min=1e-9)
        return self.head(pooled).squeeze(-1)
""",
        # PyTorch tutorials, github.com/pytorch/tutorials, beginner_source/transformer_tutorial.py: TransformerModel.forward
        # (embedding * sqrt(d_model), then a PositionalEncoding module on sequence-first input: x + pe[:x.size(0)],
        # dropout), turned back to batch-first for the blocks
        "PyTorch tutorial TransformerModel with a sequence-first PositionalEncoding": """
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        self.register_buffer("pe", positional_encoding(max_len, d_model).unsqueeze(1), persistent=False)

    def forward(self, x):
        return self.dropout(x + self.pe[: x.size(0)])

_Base = TransformerClassifier
class TransformerClassifier(_Base):
    def __init__(self, vocab_size, max_len, d_model, num_heads, d_ff, num_blocks=1, dropout=0.1):
        super().__init__(vocab_size, max_len, d_model, num_heads, d_ff, num_blocks, dropout)
        del self.positions
        self.pos_encoder = PositionalEncoding(d_model, dropout, max_len)
        del self.dropout
        self.d_model = d_model

    def forward(self, ids, mask):
        src = self.embedding(ids) * math.sqrt(self.d_model)
        src = self.pos_encoder(src.transpose(0, 1)).transpose(0, 1)
        for block in self.blocks:
            src = block(src, mask)
        src = self.norm(src)
        keep = mask.unsqueeze(-1).float()
        return self.head((src * keep).sum(1) / keep.sum(1)).squeeze(-1)
""",
    },
}
for _question, _variants in PORTED.items():
    ALTERNATIVES.setdefault(_question, {}).update({f"ported: {k}": v for k, v in _variants.items()})


def test_at_least_eight_ported_alternatives():
    assert sum(len(v) for v in PORTED.values()) >= 8


(test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
 test_graded_in_another_process_alike) = standard_tests(A, MISTAKES, ALTERNATIVES)
