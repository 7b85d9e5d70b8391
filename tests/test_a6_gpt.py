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
                kth = torch.topk(logits, top_k).values[-1]  # KTH
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
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, torch.ones(T, T, dtype=torch.bool))
        return self.proj(out.transpose(1, 2).reshape(B, T, C))
""",
        "heads split without transposing (attends across heads)": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.reshape(B, self.n_head, T, C // self.n_head) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, causal_mask(T))
        return self.proj(out.reshape(B, T, C))
""",
        "k, q, v order": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, C = x.shape
        k, q, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, causal_mask(T))
        return self.proj(out.transpose(1, 2).reshape(B, T, C))
""",
        "forgets the output projection": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, causal_mask(T))
        return out.transpose(1, 2).reshape(B, T, C)
""",
        "scales by sqrt(n_embd) instead of the head size": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        q = q * math.sqrt(C // self.n_head) / math.sqrt(C)
        out, _ = masked_attention(q, k, v, causal_mask(T))
        return self.proj(out.transpose(1, 2).reshape(B, T, C))
""",
        "fixed mask of block size (crashes on short inputs)": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        out, _ = masked_attention(q, k, v, causal_mask(12))
        return self.proj(out.transpose(1, 2).reshape(B, T, C))
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
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).contiguous().view(B, T, C))
""",
        "loop over heads with a registered (non-persistent) mask": """
_Base = CausalSelfAttention
class CausalSelfAttention(_Base):
    def __init__(self, n_embd, n_head):
        super().__init__(n_embd, n_head)
        self.register_buffer("tri", torch.tril(torch.ones(256, 256, dtype=torch.bool)), persistent=False)
    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.n_head
        qkv = self.qkv(x)
        outs = []
        for h in range(self.n_head):
            q = qkv[..., h * hs:(h + 1) * hs]
            k = qkv[..., C + h * hs:C + (h + 1) * hs]
            v = qkv[..., 2 * C + h * hs:2 * C + (h + 1) * hs]
            out, _ = masked_attention(q, k, v, self.tri[:T, :T])
            outs.append(out)
        return self.proj(torch.cat(outs, dim=-1))
""",
        "chunk and permute": """
class CausalSelfAttention(CausalSelfAttention):
    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = (t.reshape(B, T, H, C // H).permute(0, 2, 1, 3) for t in self.qkv(x).chunk(3, dim=-1))
        out, _ = masked_attention(q, k, v, torch.ones(T, T, dtype=torch.bool).tril())
        return self.proj(out.permute(0, 2, 1, 3).reshape(B, T, C))
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
            KTH="vals, idx = torch.topk(logits, top_k)",
            FILTER='logits = torch.full_like(logits, float("-inf")).scatter(0, idx, vals)'),
        "top-k on the probabilities, renormalised": sampler(
            FILTER="pass",
            PROBS=("probs = torch.softmax(logits, dim=-1)\n"
                   "if top_k is not None:\n"
                   "    vals, idx = torch.topk(probs, top_k)\n"
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


(test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
 test_graded_in_another_process_alike) = standard_tests(A, MISTAKES, ALTERNATIVES)
