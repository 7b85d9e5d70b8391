"""Assignment 6: the reference passes every test; each typical mistake fails at least one test;
different correct implementations pass."""

from mistake_checks import standard_tests

A = "a6_gpt"


# A sampler written once, with one line swapped per mistake (keeps each mistake to the point).
_SAMPLER = """
@torch.no_grad()
def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, greedy=False, generator=None):
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    ids = torch.as_tensor(prompt, dtype=torch.long).flatten()
    for _ in range(max_new_tokens):
        context = ids[-model.block_size:]  # CROP
        logits = model(context.unsqueeze(0))[0, -1]
        if greedy:
            next_id = logits.argmax().view(1)  # GREEDY
        else:
            logits = logits / temperature  # TEMPERATURE
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, len(logits))).values[-1]  # KTH
                logits = logits.masked_fill(logits < kth, float("-inf"))  # FILTER
            probs = torch.softmax(logits, dim=-1)  # PROBS
            next_id = torch.multinomial(probs, 1, generator=generator)  # DRAW
        ids = torch.cat([ids, next_id])
    return ids
"""


def sampler(**swaps):
    """The sampler above with the line tagged `# KEY` replaced by the given code (indentation kept)."""
    lines = []
    for line in _SAMPLER.splitlines():
        for key, code in swaps.items():
            if line.rstrip().endswith(f"# {key}"):
                indent = line[: len(line) - len(line.lstrip())]
                line = "\n".join(indent + part for part in code.splitlines())
        lines.append(line)
    return "\n".join(lines)


MISTAKES = {
    "q1_causal_mask": {
        "diagonal masked": "def causal_mask(T):\n    return torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)\n",
        "one future position visible": "def causal_mask(T):\n    return torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=1)\n",
        "upper triangle (past blocked, future visible)": "def causal_mask(T):\n    return torch.triu(torch.ones(T, T, dtype=torch.bool))\n",
        "float 0/1 mask": "def causal_mask(T):\n    return torch.tril(torch.ones(T, T))\n",
        "True marks the blocked positions": "def causal_mask(T):\n    return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)\n",
    },
    "q2_masked_attention": {
        "weights squeezed on the key axis (a sequence of one position loses it)": """
_reference_masked_attention = masked_attention
def masked_attention(q, k, v, mask):
    out, weights = _reference_masked_attention(q, k, v, mask)
    return out, weights.squeeze(-1)
""",
        "mask applied after the softmax": """
def masked_attention(q, k, v, mask):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) * mask
    return w @ v, w
""",
        "-inf replaced by 0": """
def masked_attention(q, k, v, mask):
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, 0.0)
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "large negative added to the allowed positions (mask inverted)": """
def masked_attention(q, k, v, mask):
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
        "no scaling by sqrt(d)": """
def masked_attention(q, k, v, mask):
    w = torch.softmax((q @ k.transpose(-2, -1)).masked_fill(~mask, float("-inf")), dim=-1)
    return w @ v, w
""",
        "softmax over the wrong axis": """
def masked_attention(q, k, v, mask):
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    w = torch.nan_to_num(torch.softmax(s, dim=-2))
    return w @ v, w
""",
        "ignores the mask it is given (always causal)": """
def masked_attention(q, k, v, mask):
    T = q.shape[-2]
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
    s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w
""",
    },
    "q3_causal_self_attention": {
        "no mask (sees the future)": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, torch.ones(T, T, dtype=torch.bool))
        return self.proj(out.transpose(1, 2).reshape(B, T, d))
""",
        "heads split without transposing (attends across heads)": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.reshape(B, self.num_heads, T, d // self.num_heads) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, causal_mask(T))
        return self.proj(out.reshape(B, T, d))
""",
        "k, q, v order": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        k, q, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, causal_mask(T))
        return self.proj(out.transpose(1, 2).reshape(B, T, d))
""",
        "forgets the output projection": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, causal_mask(T))
        return out.transpose(1, 2).reshape(B, T, d)
""",
        "scales by sqrt(dim) instead of the head size": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v))
        q = q * math.sqrt(d // self.num_heads) / math.sqrt(d)
        out, _ = masked_attention(q, k, v, causal_mask(T))
        return self.proj(out.transpose(1, 2).reshape(B, T, d))
""",
        "fixed mask of block size (crashes on short inputs)": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, causal_mask(12))
        return self.proj(out.transpose(1, 2).reshape(B, T, d))
""",
    },
    "q4_gpt": {
        "post-norm blocks": """
class Block(Block):
    def forward(self, x):
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.mlp(x))
""",
        "no residual connections": """
class Block(Block):
    def forward(self, x):
        x = self.attn(self.ln1(x))
        return self.mlp(self.ln2(x))
""",
        "no position embeddings": """
class GPT(GPT):
    def forward(self, idx):
        x = self.token_embedding(idx)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))
""",
        "forgets the final layer norm": """
class GPT(GPT):
    def forward(self, idx):
        T = idx.shape[1]
        x = self.token_embedding(idx) + self.position_embedding(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(x)
""",
        "only the first block is used": """
class GPT(GPT):
    def forward(self, idx):
        T = idx.shape[1]
        x = self.token_embedding(idx) + self.position_embedding(torch.arange(T))
        return self.lm_head(self.ln_f(self.blocks[0](x)))
""",
        "no check of the block size (IndexError instead of ValueError)": """
class GPT(GPT):
    def forward(self, idx):
        T = idx.shape[1]
        x = self.token_embedding(idx) + self.position_embedding(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))
""",
        "causal mask stored as a persistent buffer (extra tensor in the weights file)": """
_Base = GPT
class GPT(_Base):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("mask", torch.tril(torch.ones(self.block_size, self.block_size, dtype=torch.bool)))
""",
    },
    "q5_sampler": {
        "sampling from the logits without a softmax": sampler(PROBS="probs = logits"),
        "temperature applied after the softmax": sampler(
            TEMPERATURE="pass",
            PROBS="probs = torch.softmax(logits, dim=-1) / temperature"),
        "temperature multiplies the logits": sampler(TEMPERATURE="logits = logits * temperature"),
        "top-k keeps k + 1 tokens": sampler(KTH="kth = torch.topk(logits, top_k + 1).values[-1]"),
        "top-k keeps the smallest logits": sampler(
            KTH="kth = torch.topk(logits, top_k, largest=False).values[-1]",
            FILTER='logits = logits.masked_fill(logits > kth, float("-inf"))'),
        "top-k applied before temperature on probabilities set to 0 (keeps all)": sampler(
            FILTER="logits = logits.masked_fill(logits < kth, 0.0)"),
        "context not cropped": sampler(CROP="context = ids"),
        "context cropped to the first block_size tokens": sampler(CROP="context = ids[:model.block_size]"),
        "greedy picks the smallest logit": sampler(GREEDY="next_id = logits.argmin().view(1)"),
        "ignores the generator (not reproducible)": sampler(DRAW="next_id = torch.multinomial(probs, 1)"),
        "temperature 0 not rejected": sampler().replace('raise ValueError("temperature must be > 0")', "temperature = 1e-6"),
        "logits of the first position instead of the last": sampler().replace(
            "logits = model(context.unsqueeze(0))[0, -1]", "logits = model(context.unsqueeze(0))[0, 0]"),
        "drops the prompt from the output": sampler().replace("    return ids", "    return ids[len(torch.as_tensor(prompt).flatten()):]"),
    },
}


ALTERNATIVES = {
    "q1_causal_mask": {
        "triu inverted": "def causal_mask(T):\n    return ~torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)\n",
        "broadcast comparison": "def causal_mask(T):\n    i = torch.arange(T)\n    return i[None, :] <= i[:, None]\n",
        "python lists": "def causal_mask(T):\n    return torch.tensor([[j <= i for j in range(T)] for i in range(T)], dtype=torch.bool).reshape(T, T)\n",
    },
    "q2_masked_attention": {
        "additive -inf mask": """
def masked_attention(q, k, v, mask):
    bias = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    w = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5 + bias, dim=-1)
    return w @ v, w
""",
        "torch.where and einsum": """
def masked_attention(q, k, v, mask):
    s = torch.einsum("...id,...jd->...ij", q, k) / math.sqrt(q.shape[-1])
    s = torch.where(mask, s, torch.tensor(float("-inf")))
    w = F.softmax(s, dim=-1)
    return torch.einsum("...ij,...jd->...id", w, v), w
""",
        "exp and normalise by hand": """
def masked_attention(q, k, v, mask):
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    e = torch.exp(s - s.amax(dim=-1, keepdim=True))
    w = e / e.sum(dim=-1, keepdim=True)
    return w @ v, w
""",
    },
    "q3_causal_self_attention": {
        "F.scaled_dot_product_attention(is_causal=True)": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).contiguous().view(B, T, d))
""",
        "loop over heads with a registered (non-persistent) mask": """
_Base = CausalSelfAttention
class CausalSelfAttention(_Base):
    def __init__(self, dim, num_heads):
        super().__init__(dim, num_heads)
        self.register_buffer("tri", torch.tril(torch.ones(256, 256, dtype=torch.bool)), persistent=False)
    def forward(self, x):
        B, T, d = x.shape
        hs = d // self.num_heads
        qkv = self.qkv(x)
        outs = []
        for h in range(self.num_heads):
            q = qkv[..., h * hs:(h + 1) * hs]
            k = qkv[..., d + h * hs:d + (h + 1) * hs]
            v = qkv[..., 2 * d + h * hs:2 * d + (h + 1) * hs]
            out, _ = masked_attention(q, k, v, self.tri[:T, :T])
            outs.append(out)
        return self.proj(torch.cat(outs, dim=-1))
""",
        "chunk and permute": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        H = self.num_heads
        q, k, v = (t.reshape(B, T, H, d // H).permute(0, 2, 1, 3) for t in self.qkv(x).chunk(3, dim=-1))
        out, _ = masked_attention(q, k, v, torch.ones(T, T, dtype=torch.bool).tril())
        return self.proj(out.permute(0, 2, 1, 3).reshape(B, T, d))
""",
    },
    "q4_gpt": {
        "Sequential-free loop with explicit position lookup": """
class GPT(GPT):
    def forward(self, idx):
        T = idx.size(1)
        if T > self.position_embedding.num_embeddings:
            raise ValueError("too long")
        x = self.token_embedding(idx) + self.position_embedding.weight[:T]
        for i in range(len(self.blocks)):
            x = self.blocks[i](x)
        return self.lm_head(self.ln_f(x))
""",
        "block with named intermediate": """
class Block(Block):
    def forward(self, x):
        attended = x + self.attn(self.ln1(x))
        return attended + self.mlp(self.ln2(attended))
""",
    },
    "q5_sampler": {
        "sort-based top-k": sampler(
            KTH="sorted_logits, _ = torch.sort(logits, descending=True)\nkth = sorted_logits[min(top_k, len(sorted_logits)) - 1]"),
        "top-k by scattering the kept logits": sampler(
            KTH="vals, idx = torch.topk(logits, min(top_k, len(logits)))",
            FILTER='logits = torch.full_like(logits, float("-inf")).scatter(0, idx, vals)'),
        "top-k on the probabilities, renormalised": sampler(
            FILTER="pass",
            PROBS=("probs = torch.softmax(logits, dim=-1)\n"
                   "if top_k is not None:\n"
                   "    vals, idx = torch.topk(probs, min(top_k, len(probs)))\n"
                   "    probs = torch.zeros_like(probs).scatter(0, idx, vals)\n"
                   "    probs = probs / probs.sum()")),
        "log-softmax, divided by T, softmax again": sampler(
            TEMPERATURE="logits = torch.log_softmax(logits, dim=-1) / temperature"),
        "python list of ids, converted at the end": """
@torch.no_grad()
def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, greedy=False, generator=None):
    if not temperature > 0:
        raise ValueError("temperature must be positive")
    out = [int(t) for t in prompt]
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([out[-model.block_size:]]))[:, -1, :][0]
        if greedy:
            out.append(int(torch.argmax(logits)))
            continue
        logits = logits / temperature
        if top_k:
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
            logits[logits < v[-1]] = -float("inf")
        out.append(int(torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)))
    return torch.tensor(out)
""",
    },
}


# bugs of the kinds that used to pass (gradient flow, combinations of arguments); each must fail a test of its question
BEHAVIOUR_MISTAKES = {
    "q2_masked_attention": {
        "attention weights detached": """
def masked_attention(q, k, v, mask):
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-1).detach()
    return w @ v, w
""",
    },
    "q3_causal_self_attention": {
        "scores computed under torch.no_grad (queries and keys never learn)": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, d = x.shape
        q, k, v = (t.view(B, T, self.num_heads, d // self.num_heads).transpose(1, 2) for t in self.qkv(x).split(d, dim=-1))
        with torch.no_grad():
            s = (q @ k.transpose(-2, -1) / math.sqrt(d // self.num_heads)).masked_fill(~causal_mask(T), float("-inf"))
        return self.proj((torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, d))
""",
    },
    "q4_gpt": {
        "token and position embeddings detached": """
class GPT(GPT):
    def forward(self, idx):
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError("too long")
        x = (self.token_embedding(idx) + self.position_embedding(torch.arange(T))).detach()
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))
""",
    },
    "q5_sampler": {
        "temperature checked only when sampling (greedy accepts 0)": sampler().replace(
            "    if temperature <= 0:\n        raise ValueError(\"temperature must be > 0\")\n", "").replace(
            "            logits = logits / temperature  # TEMPERATURE",
            "            if temperature <= 0:\n                raise ValueError(\"temperature must be > 0\")\n"
            "            logits = logits / temperature  # TEMPERATURE"),
        "top_k beyond the vocabulary crashes": sampler(KTH="kth = torch.topk(logits, top_k).values[-1]"),
        "temperature ignored when top_k is given": sampler(
            TEMPERATURE="logits = logits / temperature if top_k is None else logits"),
        "a fixed seed instead of the generator": sampler(
            DRAW="next_id = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(0))"),
    },
}
for _question, _variants in BEHAVIOUR_MISTAKES.items():
    MISTAKES.setdefault(_question, {}).update(_variants)


# correct implementations ported from public code (each written for this notebook's interface; the source is named above it)
PORTED = {
    "q1_causal_mask": {
        # The Annotated Transformer, github.com/harvardnlp/annotated-transformer, the_annotated_transformer.py:
        # subsequent_mask (triu(ones, diagonal=1) == 0, of shape (1, T, T); here its only matrix)
        "Annotated Transformer subsequent_mask": """
def causal_mask(T):
    attn_shape = (1, T, T)
    subsequent_mask = torch.triu(torch.ones(attn_shape), diagonal=1).type(torch.uint8)
    return (subsequent_mask == 0)[0]
""",
        # Peter Bloem, github.com/pbloem/former, former/util/util.py: mask_ (blocks the upper triangle found with
        # triu_indices, offset 1 to keep the diagonal), applied to a matrix of True
        "Bloem mask_ with triu_indices": """
def causal_mask(T):
    matrices = torch.ones(T, T, dtype=torch.bool)
    indices = torch.triu_indices(T, T, offset=1)
    matrices[indices[0], indices[1]] = False
    return matrices
""",
    },
    "q2_masked_attention": {
        # minGPT, github.com/karpathy/minGPT, mingpt/model.py: CausalSelfAttention.forward (times 1 / sqrt(k.size(-1)),
        # masked_fill(mask == 0, float('-inf')), F.softmax), with the given mask instead of its stored one
        "minGPT masked_fill(mask == 0, -inf)": """
def masked_attention(q, k, v, mask):
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    att = att.masked_fill(mask == 0, float("-inf"))
    att = F.softmax(att, dim=-1)
    return att @ v, att
""",
        # Dive into Deep Learning, github.com/d2l-ai/d2l-en, chapter_attention-mechanisms-and-transformers/
        # attention-scoring-functions.md: masked_softmax (masked entries set to -1e6 by indexing, then softmax)
        "d2l masked_softmax (-1e6 by indexing)": """
def masked_attention(q, k, v, mask):
    d = q.shape[-1]
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
    scores = scores.clone()
    scores[..., ~mask] = -1e6
    attention_weights = nn.functional.softmax(scores, dim=-1)
    return torch.matmul(attention_weights, v), attention_weights
""",
    },
    "q3_causal_self_attention": {
        # nanoGPT, github.com/karpathy/nanoGPT, model.py: CausalSelfAttention.forward, the manual ("slow") path, with the
        # lower-triangular bias built for T on x's device instead of registered for block_size; its local names kept
        # (C for the width), its self.n_head being this notebook's self.num_heads
        "nanoGPT manual attention with a tril bias": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(C, dim=2)
        k = k.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2)
        q = q.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2)
        v = v.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2)
        bias = torch.tril(torch.ones(T, T, device=x.device)).view(1, 1, T, T)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)
""",
        # Peter Bloem, github.com/pbloem/former, former/modules.py: SelfAttentionGPT2 (keys split straight into
        # (batch, head, head_features, seq), matmul(q, k), scaled by sqrt(v.size(-1)), mask_ on the upper triangle)
        "Bloem SelfAttentionGPT2": """
class CausalSelfAttention(CausalSelfAttention):
    def split_heads(self, x, is_key=False):
        x = x.view(*(x.size()[:-1] + (self.num_heads, x.size(-1) // self.num_heads)))
        return x.permute(0, 2, 3, 1) if is_key else x.permute(0, 2, 1, 3)

    def forward(self, input_sequence):
        b, t, e = input_sequence.size()
        query, key, value = self.qkv(input_sequence).split(e, dim=2)
        query, key, value = self.split_heads(query), self.split_heads(key, is_key=True), self.split_heads(value)
        dot = torch.matmul(query, key) / (float(value.size(-1)) ** 0.5)
        indices = torch.triu_indices(t, t, offset=1)
        dot[..., indices[0], indices[1]] = float("-inf")
        dot = nn.Softmax(dim=-1)(dot)
        a = torch.matmul(dot, value).permute(0, 2, 1, 3).contiguous()
        return self.proj(a.view(*(a.size()[:-2] + (a.size(-2) * a.size(-1),))))
""",
    },
    "q4_gpt": {
        # nanoGPT, github.com/karpathy/nanoGPT, model.py: GPT.forward (pos = arange(0, t, device=device), wte + wpe, the
        # blocks, ln_f, lm_head on every position); its assert on the block size raises the ValueError asked for here
        "nanoGPT GPT.forward": """
class GPT(GPT):
    def forward(self, idx):
        device = idx.device
        b, t = idx.size()
        if t > self.block_size:
            raise ValueError(f"Cannot forward sequence of length {t}, block size is only {self.block_size}")
        pos = torch.arange(0, t, dtype=torch.long, device=device)
        tok_emb = self.token_embedding(idx)
        pos_emb = self.position_embedding(pos)
        x = tok_emb + pos_emb
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return self.lm_head(x)
""",
        # minGPT, github.com/karpathy/minGPT, mingpt/model.py: GPT.forward (position embeddings sliced from a stored
        # (1, block_size, d) table, here the embedding's weight) and Block.forward
        "minGPT GPT.forward and Block.forward": """
class Block(Block):
    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x

class GPT(GPT):
    def forward(self, idx):
        b, t = idx.size()
        if not t <= self.block_size:
            raise ValueError("Cannot forward, model block size is exhausted.")
        token_embeddings = self.token_embedding(idx)
        position_embeddings = self.position_embedding.weight[None, :t, :]
        x = token_embeddings + position_embeddings
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))
""",
    },
    "q5_sampler": {
        # nanoGPT, github.com/karpathy/nanoGPT, model.py: GPT.generate (a (1, T) batch, idx_cond cropped, logits[:, -1, :]
        # / temperature, topk with min(top_k, logits.size(-1)), logits[logits < v[:, [-1]]] = -inf, multinomial), with
        # the greedy switch, the temperature check and the generator this notebook asks for
        "nanoGPT GPT.generate": """
@torch.no_grad()
def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, greedy=False, generator=None):
    if not temperature > 0:
        raise ValueError("temperature must be > 0")
    idx = prompt.view(1, -1)
    for _ in range(max_new_tokens):
        idx_cond = idx if idx.size(1) <= model.block_size else idx[:, -model.block_size:]
        logits = model(idx_cond)
        if greedy:
            idx_next = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        else:
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("Inf")
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1, generator=generator)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx[0]
""",
        # minGPT, github.com/karpathy/minGPT, mingpt/utils.py: sample() and top_k_logits() (a clone with the logits
        # below the k-th set to -inf; torch.topk(probs, k=1) when not sampling), the k capped at the vocabulary size
        "minGPT sample with top_k_logits": """
def top_k_logits(logits, k):
    v, ix = torch.topk(logits, min(k, logits.size(-1)))
    out = logits.clone()
    out[out < v[:, [-1]]] = -float("Inf")
    return out

@torch.no_grad()
def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, greedy=False, generator=None):
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    block_size = model.block_size
    x = prompt.unsqueeze(0)
    for k in range(max_new_tokens):
        x_cond = x if x.size(1) <= block_size else x[:, -block_size:]
        logits = model(x_cond)
        logits = logits[:, -1, :] / temperature
        if top_k is not None:
            logits = top_k_logits(logits, top_k)
        probs = F.softmax(logits, dim=-1)
        if not greedy:
            ix = torch.multinomial(probs, num_samples=1, generator=generator)
        else:
            _, ix = torch.topk(probs, k=1, dim=-1)
        x = torch.cat((x, ix), dim=1)
    return x[0]
""",
        # Hugging Face transformers, src/transformers/generation/logits_process.py: TemperatureLogitsWarper (raises
        # ValueError unless temperature > 0; any positive number accepted here) and TopKLogitsWarper
        # (top_k = min(top_k, scores.size(-1)), scores < topk(...)[0][..., -1, None] filled with -inf)
        "Hugging Face TemperatureLogitsWarper and TopKLogitsWarper": """
class TemperatureLogitsWarper:
    def __init__(self, temperature):
        if not (temperature > 0):
            raise ValueError(f"`temperature` has to be a strictly positive float, but is {temperature}")
        self.temperature = temperature

    def __call__(self, input_ids, scores):
        return scores / self.temperature


class TopKLogitsWarper:
    def __init__(self, top_k, filter_value=-float("Inf"), min_tokens_to_keep=1):
        self.top_k = max(top_k, min_tokens_to_keep)
        self.filter_value = filter_value

    def __call__(self, input_ids, scores):
        top_k = min(self.top_k, scores.size(-1))
        indices_to_remove = scores < torch.topk(scores, top_k)[0][..., -1, None]
        return scores.masked_fill(indices_to_remove, self.filter_value)


@torch.no_grad()
def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, greedy=False, generator=None):
    warpers = [TemperatureLogitsWarper(temperature)] + ([TopKLogitsWarper(top_k)] if top_k is not None else [])
    input_ids = prompt[None, :]
    for _ in range(max_new_tokens):
        scores = model(input_ids[:, -model.block_size:])[:, -1, :]
        if greedy:
            next_tokens = torch.argmax(scores, dim=-1)
        else:
            for warper in warpers:
                scores = warper(input_ids, scores)
            probs = nn.functional.softmax(scores, dim=-1)
            next_tokens = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
    return input_ids[0]
""",
        # gpt-fast, github.com/pytorch-labs/gpt-fast, generate.py: logits_to_probs (pivot = v.select(-1, -1), torch.where)
        # and multinomial_sample_one_no_sync (argmax of probs / Exponential(1) noise: a draw from probs without
        # torch.multinomial), with the generator driving the noise; it clamps the temperature at 1e-5, here it raises
        "gpt-fast logits_to_probs and exponential-race sampling": """
def multinomial_sample_one_no_sync(probs_sort, generator=None):
    q = torch.empty_like(probs_sort).exponential_(1, generator=generator)
    return torch.argmax(probs_sort / q, dim=-1, keepdim=True).to(dtype=torch.long)

def logits_to_probs(logits, temperature=1.0, top_k=None):
    logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        pivot = v.select(-1, -1).unsqueeze(-1)
        logits = torch.where(logits < pivot, -float("Inf"), logits)
    return torch.nn.functional.softmax(logits, dim=-1)

@torch.no_grad()
def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, greedy=False, generator=None):
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    tokens = prompt.clone()
    for _ in range(max_new_tokens):
        logits = model(tokens[-model.block_size:].view(1, -1))[0, -1]
        if greedy:
            idx_next = logits.argmax(dim=-1, keepdim=True)
        else:
            idx_next = multinomial_sample_one_no_sync(logits_to_probs(logits, temperature, top_k), generator)
        tokens = torch.cat([tokens, idx_next])
    return tokens
""",
    },
}
for _question, _variants in PORTED.items():
    ALTERNATIVES.setdefault(_question, {}).update({f"ported: {k}": v for k, v in _variants.items()})


def test_at_least_eight_ported_alternatives():
    assert sum(len(v) for v in PORTED.values()) >= 8


(test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
 test_graded_in_another_process_alike) = standard_tests(A, MISTAKES, ALTERNATIVES)
