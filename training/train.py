"""Train Cachet-Tiny: a small llama-architecture code model with a prefix-suffix-middle FIM objective.

Runs on one GPU in a single call: collect permissively licensed Python from the machine's own
site-packages (plus carried JS/TS), hold out whole packages, tokenize with the deepseek-coder
tokenizer (tokenizer.json built by build_tokenizer.py), train for a fixed wall-clock budget,
keep the weights with the best held-out loss, evaluate FIM single-line infilling (held-out
packages and HumanEval) against a copy-previous-line baseline, and write a Q8_0 GGUF.

RoPE is llama.cpp's "normal" style (adjacent pairs), so the weights export without permutation.

usage: python3 training/train.py --carry .carry --out $OUT [--train-seconds 390] [--smoke]
"""
import argparse, gzip, hashlib, importlib.metadata as md, io, json, math, os, random, re, sys, tarfile, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_io  # noqa: E402

T0 = time.time()
BOS, EOS, FIM_HOLE, FIM_BEGIN, FIM_END = 32013, 32014, 32015, 32016, 32017  # deepseek-coder ids
N_VOCAB = 32256
LOG = []


def log(*a):
    s = f'[{time.time() - T0:7.1f}s] ' + ' '.join(str(x) for x in a)
    print(s, flush=True)
    LOG.append(s)


# ----------------------------------------------------------------------------- data

PERMISSIVE = re.compile(r'\b(MIT|BSD|Apache|ISC|PSF|Python Software Foundation|Zlib|Unlicense|0BSD)\b', re.I)
COPYLEFT = re.compile(r'\b(GPL|LGPL|AGPL|MPL|Mozilla|EPL|CDDL|Commercial|Proprietary)\b', re.I)
# Whole distributions kept out of training, for held-out loss and FIM evaluation.
HELD_OUT = ('networkx', 'seaborn', 'xarray')


def dist_licence(d):
    m = d.metadata
    parts = [m.get('License-Expression') or '', (m.get('License') or '')[:200]]
    parts += [c for c in (m.get_all('Classifier') or []) if c.startswith('License ::')]
    return ' | '.join(p for p in parts if p)


def collect_python(max_bytes):
    """Returns {dist name: [file texts]} and the licence list, from permissive distributions."""
    seen_files, seen_hash, out, lic = set(), set(), {}, []
    for d in sorted(md.distributions(), key=lambda d: (d.metadata['Name'] or '').lower()):
        name = (d.metadata['Name'] or '').lower()
        l = dist_licence(d)
        ok = bool(PERMISSIVE.search(l)) and not COPYLEFT.search(l)
        if not name or not d.files:
            continue
        lic.append({'package': name, 'version': d.version, 'license': l[:160], 'used': ok})
        if not ok:
            continue
        texts = []
        for f in d.files:
            if not str(f).endswith('.py'):
                continue
            p = str(d.locate_file(f))
            if p in seen_files:
                continue
            seen_files.add(p)
            try:
                if os.path.getsize(p) > 400_000:
                    continue
                b = open(p, 'rb').read()
            except OSError:
                continue
            if len(b) < 100 or len(b) / (b.count(b'\n') + 1) > 120:
                continue
            h = hashlib.sha1(b).digest()
            if h in seen_hash:
                continue
            seen_hash.add(h)
            try:
                texts.append(b.decode('utf-8'))
            except UnicodeDecodeError:
                continue
        if texts:
            out[name] = texts
        lic[-1]['files'] = len(texts)
        if sum(sum(len(t) for t in v) for v in out.values()) > max_bytes:
            break
    return out, lic


def collect_js(path, max_bytes):
    texts, total = [], 0
    if not os.path.exists(path):
        return texts
    with tarfile.open(path, 'r:xz') as tar:
        for m in tar:
            if not m.isfile():
                continue
            t = tar.extractfile(m).read().decode('utf-8', errors='replace')
            texts.append(t)
            total += len(t)
            if total > max_bytes:
                break
    return texts


SPECIAL_TEXT = re.compile('<｜(fim▁hole|fim▁begin|fim▁end|begin▁of▁sentence|end▁of▁sentence)｜>')


def chunks(text, max_chars):
    """Split a file into pieces of whole lines of at most ~max_chars."""
    text = SPECIAL_TEXT.sub('', text)
    lines = text.splitlines(keepends=True)
    cur, n = [], 0
    for ln in lines:
        if n + len(ln) > max_chars and cur:
            yield ''.join(cur)
            cur, n = [], 0
        cur.append(ln)
        n += len(ln)
    if cur:
        yield ''.join(cur)


def fim_split(text, rng, pretok):
    """Prefix/middle/suffix with the hole on line boundaries (sometimes starting at a
    pre-token boundary inside its first line, as when the cursor sits mid-line)."""
    lines = text.splitlines(keepends=True)
    if len(lines) < 3:
        return None
    r = rng.random()
    n = 1 if r < 0.5 else rng.randint(2, 4) if r < 0.8 else rng.randint(5, 15)
    n = min(n, len(lines) - 1)
    s = rng.randrange(0, len(lines) - n + 1)
    prefix = ''.join(lines[:s])
    middle = ''.join(lines[s:s + n])
    suffix = ''.join(lines[s + n:])
    if not middle.strip():
        return None
    if rng.random() < 0.25:
        first = lines[s].rstrip('\r\n')
        cuts = [off[1] for _, off in pretok.pre_tokenize_str(first)][:-1]
        if cuts:
            c = rng.choice(cuts)
            prefix += middle[:c]
            middle = middle[c:]
    return prefix, middle, suffix


def build_stream(tok, docs, rng, fim_rate, chunk_chars):
    """Token stream of samples: BOS FIM_BEGIN pre FIM_HOLE suf FIM_END mid EOS, or BOS doc EOS."""
    pretok = tok.pre_tokenizer
    pieces, layout = [], []
    for d in docs:
        for c in chunks(d, chunk_chars):
            sp = fim_split(c, rng, pretok) if rng.random() < fim_rate else None
            if sp:
                layout.append(('f', len(pieces)))
                pieces.extend(sp)
            else:
                layout.append(('p', len(pieces)))
                pieces.append(c)
    order = list(range(len(layout)))
    rng.shuffle(order)
    enc = tok.encode_batch(pieces, add_special_tokens=False)
    ids = [np.asarray(e.ids, dtype=np.int32) for e in enc]
    out = []
    for i in order:
        kind, j = layout[i]
        if kind == 'f':
            pre, mid, suf = ids[j], ids[j + 1], ids[j + 2]
            out += [np.array([BOS, FIM_BEGIN], np.int32), pre, np.array([FIM_HOLE], np.int32), suf,
                    np.array([FIM_END], np.int32), mid, np.array([EOS], np.int32)]
        else:
            out += [np.array([BOS], np.int32), ids[j], np.array([EOS], np.int32)]
    return np.concatenate(out) if out else np.zeros(0, np.int32)


# ----------------------------------------------------------------------------- model

class Cfg:
    def __init__(self, **k):
        self.vocab = N_VOCAB
        self.dim = 512
        self.layers = 6
        self.heads = 8
        self.kv_heads = 4
        self.ff = 1536
        self.ctx = 1024
        self.eps = 1e-5
        self.rope_base = 10000.0
        self.__dict__.update(k)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(cfg, device):
    hd = cfg.dim // cfg.heads
    inv = cfg.rope_base ** (-torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd)
    pos = torch.arange(cfg.ctx + 64, device=device, dtype=torch.float32)
    ang = pos[:, None] * inv[None, :]
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin):
    """llama.cpp ROPE_TYPE_NORM: rotate adjacent pairs (x[2i], x[2i+1]). x: [B, H, T, hd];
    cos/sin: [T, hd/2] or [B, 1, T, hd/2]."""
    xf = x.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    y = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return y.flatten(-2).type_as(x)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd = cfg.dim // cfg.heads
        self.attn_norm = RMSNorm(cfg.dim, cfg.eps)
        self.wq = nn.Linear(cfg.dim, cfg.heads * hd, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.kv_heads * hd, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.kv_heads * hd, bias=False)
        self.wo = nn.Linear(cfg.heads * hd, cfg.dim, bias=False)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.eps)
        self.w_gate = nn.Linear(cfg.dim, cfg.ff, bias=False)
        self.w_up = nn.Linear(cfg.dim, cfg.ff, bias=False)
        self.w_down = nn.Linear(cfg.ff, cfg.dim, bias=False)

    def forward(self, x, cos, sin, mask):
        c = self.cfg
        B, T, _ = x.shape
        hd = c.dim // c.heads
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, c.heads, hd).transpose(1, 2)
        k = self.wk(h).view(B, T, c.kv_heads, hd).transpose(1, 2)
        v = self.wv(h).view(B, T, c.kv_heads, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if mask is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        x = x + self.wo(a.transpose(1, 2).reshape(B, T, c.heads * hd))
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_embd = nn.Embedding(cfg.vocab, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, cfg.eps)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * cfg.layers) if n.endswith(('wo.weight', 'w_down.weight')) else 0.02
                nn.init.normal_(p, 0, std)

    def hidden(self, idx, cos, sin, mask=None):
        x = self.tok_embd(idx)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return self.norm(x)

    def forward(self, idx, targets, cos, sin):
        T = idx.shape[1]
        h = self.hidden(idx, cos[:T], sin[:T])
        logits = F.linear(h, self.tok_embd.weight)  # tied output
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))

    def logits(self, idx, pos, mask, cos, sin):
        """Batched inference with left padding: pos [B, T] per-row positions, mask [B,1,T,T] bool."""
        c, s = cos[pos][:, None], sin[pos][:, None]
        h = self.hidden(idx, c, s, mask)
        return F.linear(h[:, -1], self.tok_embd.weight).float()


# ----------------------------------------------------------------------------- evaluation

def edit_sim(a, b):
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def prev_line(prefix):
    lines = prefix.splitlines()
    return lines[-1] if lines else ''


@torch.no_grad()
def fim_single_line(model, tok, tasks, cos, sin, max_pre=700, max_suf=250, max_new=40, bs=96):
    """tasks: [(prefix, middle_line, suffix)]. Greedy PSM completion, first generated line
    compared with the hole's line. Returns metrics and a few examples."""
    model.eval()
    dev = cos.device
    nl_ids = {i for i in range(32000) if '\n' in tok.decode([i])}
    prompts = []
    for pre, mid, suf in tasks:
        p = tok.encode(pre, add_special_tokens=False).ids[-max_pre:]
        s = tok.encode(suf, add_special_tokens=False).ids[:max_suf]
        prompts.append([BOS, FIM_BEGIN] + p + [FIM_HOLE] + s + [FIM_END])
    order = sorted(range(len(tasks)), key=lambda i: len(prompts[i]))
    outs = [None] * len(tasks)
    for b0 in range(0, len(order), bs):
        idxs = order[b0:b0 + bs]
        seqs = [list(prompts[i]) for i in idxs]
        gen = [[] for _ in idxs]
        done = [False] * len(idxs)
        for _ in range(max_new):
            L = max(len(s) for s in seqs)
            pad = [L - len(s) for s in seqs]
            idx = torch.tensor([[0] * p + s for p, s in zip(pad, seqs)], device=dev)
            padt = torch.tensor(pad, device=dev)
            ar = torch.arange(L, device=dev)
            pos = (ar[None, :] - padt[:, None]).clamp(min=0)
            valid = ar[None, :] >= padt[:, None]  # [B, T] key is real
            causal = ar[:, None] >= ar[None, :]
            mask = (causal[None] & valid[:, None, :]) | torch.eye(L, dtype=torch.bool, device=dev)[None]
            with torch.autocast('cuda', dtype=torch.bfloat16):
                nxt = model.logits(idx, pos, mask[:, None], cos, sin).argmax(-1).tolist()
            for r, t in enumerate(nxt):
                if done[r]:
                    continue
                if t == EOS or t >= 32000:
                    done[r] = True
                    continue
                gen[r].append(t)
                seqs[r].append(t)
                if t in nl_ids:
                    done[r] = True
            if all(done):
                break
        for r, i in enumerate(idxs):
            outs[i] = tok.decode(gen[r]).split('\n')[0]
    em = es = bem = bes = 0.0
    examples = []
    for (pre, mid, suf), o in zip(tasks, outs):
        want = mid.rstrip('\r\n')
        base = prev_line(pre)
        em += o.rstrip() == want.rstrip()
        es += edit_sim(o.rstrip(), want.rstrip())
        bem += base.rstrip() == want.rstrip()
        bes += edit_sim(base.rstrip(), want.rstrip())
        if len(examples) < 8:
            examples.append({'want': want, 'got': o})
    n = max(len(tasks), 1)
    model.train()
    return {'n': len(tasks), 'exact_match': em / n, 'edit_similarity': es / n,
            'baseline_copy_prev_line': {'exact_match': bem / n, 'edit_similarity': bes / n},
            'examples': examples}


def heldout_line_tasks(texts, rng, n):
    tasks = []
    tries = 0
    while len(tasks) < n and tries < n * 20 and texts:
        tries += 1
        t = SPECIAL_TEXT.sub('', rng.choice(texts))
        lines = t.splitlines(keepends=True)
        if len(lines) < 5:
            continue
        i = rng.randrange(1, len(lines) - 1)
        if len(lines[i].strip()) < 3 or not lines[i].endswith('\n'):
            continue
        tasks.append((''.join(lines[:i]), lines[i], ''.join(lines[i + 1:])))
    return tasks


@torch.no_grad()
def eval_loss(model, data, cos, sin, ctx, rows=48):
    model.eval()
    n = (len(data) - 1) // ctx
    if n == 0:
        return float('nan')
    g = torch.Generator(device='cpu').manual_seed(1)
    starts = torch.randint(0, len(data) - ctx - 1, (min(rows, n * 4),), generator=g)
    losses = []
    for i in range(0, len(starts), 16):
        st = starts[i:i + 16].to(data.device)
        off = torch.arange(ctx + 1, device=data.device)
        chunk = data[st[:, None] + off[None]].long()
        with torch.autocast('cuda', dtype=torch.bfloat16):
            losses.append(model(chunk[:, :-1], chunk[:, 1:], cos, sin).item())
    model.train()
    return sum(losses) / len(losses)


# ----------------------------------------------------------------------------- export

def export_gguf(model, cfg, vocab_gguf, path, meta_extra):
    _, vmeta, _ = gguf_io.read_gguf(vocab_gguf)
    w = gguf_io.Writer()
    A = 'llama'
    w.add('general.architecture', gguf_io.STRING, A)
    w.add('general.name', gguf_io.STRING, 'Cachet-Tiny')
    w.add('general.description', gguf_io.STRING, meta_extra)
    w.add('general.license', gguf_io.STRING, 'Apache-2.0')
    w.add('general.file_type', gguf_io.U32, 7)  # LLAMA_FTYPE_MOSTLY_Q8_0
    w.add('general.quantization_version', gguf_io.U32, 2)
    w.add(f'{A}.vocab_size', gguf_io.U32, cfg.vocab)
    w.add(f'{A}.context_length', gguf_io.U32, cfg.ctx)
    w.add(f'{A}.embedding_length', gguf_io.U32, cfg.dim)
    w.add(f'{A}.block_count', gguf_io.U32, cfg.layers)
    w.add(f'{A}.feed_forward_length', gguf_io.U32, cfg.ff)
    w.add(f'{A}.attention.head_count', gguf_io.U32, cfg.heads)
    w.add(f'{A}.attention.head_count_kv', gguf_io.U32, cfg.kv_heads)
    w.add(f'{A}.attention.layer_norm_rms_epsilon', gguf_io.F32, cfg.eps)
    w.add(f'{A}.rope.freq_base', gguf_io.F32, cfg.rope_base)
    w.add(f'{A}.rope.dimension_count', gguf_io.U32, cfg.dim // cfg.heads)
    for k, (t, v) in vmeta.items():
        if k.startswith('tokenizer.'):
            if t == gguf_io.ARRAY:
                w.add(k, t, v[1], v[0])
            else:
                w.add(k, t, v)
    w.add('tokenizer.ggml.fim_pre_token_id', gguf_io.U32, FIM_BEGIN)
    w.add('tokenizer.ggml.fim_suf_token_id', gguf_io.U32, FIM_HOLE)
    w.add('tokenizer.ggml.fim_mid_token_id', gguf_io.U32, FIM_END)
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    Q8, F32 = gguf_io.GGML_Q8_0, gguf_io.GGML_F32
    w.tensor('token_embd.weight', sd['tok_embd.weight'], Q8)
    for i in range(cfg.layers):
        p = f'blocks.{i}.'
        w.tensor(f'blk.{i}.attn_norm.weight', sd[p + 'attn_norm.weight'], F32)
        w.tensor(f'blk.{i}.attn_q.weight', sd[p + 'wq.weight'], Q8)
        w.tensor(f'blk.{i}.attn_k.weight', sd[p + 'wk.weight'], Q8)
        w.tensor(f'blk.{i}.attn_v.weight', sd[p + 'wv.weight'], Q8)
        w.tensor(f'blk.{i}.attn_output.weight', sd[p + 'wo.weight'], Q8)
        w.tensor(f'blk.{i}.ffn_norm.weight', sd[p + 'ffn_norm.weight'], F32)
        w.tensor(f'blk.{i}.ffn_gate.weight', sd[p + 'w_gate.weight'], Q8)
        w.tensor(f'blk.{i}.ffn_up.weight', sd[p + 'w_up.weight'], Q8)
        w.tensor(f'blk.{i}.ffn_down.weight', sd[p + 'w_down.weight'], Q8)
    w.tensor('output_norm.weight', sd['norm.weight'], F32)
    b = w.to_bytes()
    part = 15 << 20
    for old in os.listdir(os.path.dirname(path)):
        if old.startswith(os.path.basename(path) + '.part'):
            os.remove(os.path.join(os.path.dirname(path), old))
    for i in range(0, len(b), part):
        with open(f'{path}.part{i // part}', 'wb') as f:
            f.write(b[i:i + part])
    log(f'wrote {path}.part* ({len(b) / 1e6:.1f} MB, sha256 {hashlib.sha256(b).hexdigest()[:16]})')
    return len(b)


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--carry', default='.carry')
    ap.add_argument('--out', default=os.environ.get('OUT', 'out'))
    ap.add_argument('--train-seconds', type=float, default=390)
    ap.add_argument('--py-mb', type=float, default=900)
    ap.add_argument('--js-mb', type=float, default=80)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--ctx', type=int, default=1024)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--fim-rate', type=float, default=0.7)
    ap.add_argument('--compile', type=int, default=1)
    ap.add_argument('--checkpoint-at', type=float, default=0.6)
    ap.add_argument('--humaneval', type=int, default=1033)
    ap.add_argument('--heldout-tasks', type=int, default=400)
    ap.add_argument('--smoke', action='store_true')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    rng = random.Random(0)
    from tokenizers import Tokenizer
    here = os.path.dirname(os.path.abspath(__file__))
    tok = Tokenizer.from_file(os.path.join(here, 'tokenizer.json'))
    results = {'args': vars(a)}

    # 1. tokenizer check against llama.cpp's expected ids
    vocab_gguf = os.path.join(a.carry, 'ggml-vocab-deepseek-coder.gguf')
    inp = open(vocab_gguf + '.inp', encoding='utf-8').read().split('\n__ggml_vocab_test__\n')
    outl = open(vocab_gguf + '.out', encoding='utf-8').read().split('\n')
    ok = 0
    bad = []
    for s, o in zip(inp, outl):
        want = [int(x) for x in o.split()]
        got = tok.encode(s, add_special_tokens=False).ids
        ok += got == want
        if got != want:
            bad.append({'text': s[:60], 'want': want[:20], 'got': got[:20]})
    results['tokenizer_check'] = {'matched': ok, 'total': min(len(inp), len(outl)), 'mismatches': bad[:5]}
    log(f'tokenizer vs llama.cpp: {ok}/{min(len(inp), len(outl))} strings identical', bad[:3])

    # 2. data
    py, lic = collect_python(a.py_mb * 1e6)
    held = {k: v for k, v in py.items() if k in HELD_OUT}
    train_docs = [t for k, v in py.items() if k not in HELD_OUT for t in v]
    js = collect_js(os.path.join(a.carry, 'js.tar.xz'), a.js_mb * 1e6)
    heldout_texts = [t for v in held.values() for t in v]
    log(f'python: {len(py)} permissive distributions, {len(train_docs)} train files '
        f'({sum(map(len, train_docs)) / 1e6:.0f} MB), held out {sorted(held)} ({len(heldout_texts)} files); '
        f'js/ts: {len(js)} files ({sum(map(len, js)) / 1e6:.0f} MB)')
    results['data'] = {'python_distributions_used': sorted(k for k in py if k not in HELD_OUT),
                       'held_out_distributions': sorted(held),
                       'python_train_bytes': sum(map(len, train_docs)),
                       'js_bytes': sum(map(len, js)), 'licences': lic}
    if a.smoke:
        train_docs = train_docs[:3000]
        js = js[:300]
        heldout_texts = heldout_texts[:400]
    docs = train_docs + js
    train_np = build_stream(tok, docs, rng, a.fim_rate, 3000)
    held_np = build_stream(tok, heldout_texts[:1500], random.Random(1), a.fim_rate, 3000)
    log(f'tokens: train {len(train_np) / 1e6:.1f}M, held-out {len(held_np) / 1e6:.2f}M')
    results['data']['train_tokens'] = int(len(train_np))
    results['data']['heldout_tokens'] = int(len(held_np))

    dev = 'cuda'
    torch.backends.cuda.matmul.allow_tf32 = True
    train = torch.from_numpy(train_np).to(dev)
    held_t = torch.from_numpy(held_np).to(dev)
    cfg = Cfg(ctx=a.ctx)
    model = Model(cfg).to(dev)
    nparam = sum(p.numel() for p in model.parameters())
    log(f'model: {nparam / 1e6:.2f}M params, {vars(cfg)}')
    results['model'] = {'params': nparam, **vars(cfg)}
    cos, sin = rope_tables(cfg, dev)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    step_fn = torch.compile(model) if a.compile else model

    # 3. train for a wall-clock budget; lr follows warmup + cosine over elapsed time fraction
    B, T = a.batch, cfg.ctx
    n_tok = len(train)
    off = torch.arange(T + 1, device=dev)
    curve, best = [], (float('inf'), None, 0)
    t_start = None
    step, seen = 0, 0
    next_eval, checkpointed = 0.0, False
    eval_every = max(a.train_seconds / 8, 10)
    while True:
        if step == 3:
            torch.cuda.synchronize()
            t_start = time.time()  # compile/warm-up excluded from the budget's clock
            seen = 0
        el = (time.time() - t_start) if t_start else 0.0
        frac = min(el / a.train_seconds, 1.0)
        lr = a.lr * min(1.0, (frac + 1e-4) / 0.03) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g['lr'] = lr
        st = torch.randint(0, n_tok - T - 1, (B,), device=dev)
        chunk = train[st[:, None] + off[None]].long()
        with torch.autocast('cuda', dtype=torch.bfloat16):
            loss = step_fn(chunk[:, :-1], chunk[:, 1:], cos, sin)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += B * T
        if step <= 3:
            log(f'step {step} loss {loss.item():.3f}')
        if t_start and (el >= next_eval or frac >= 1.0):
            tl = loss.item()
            hl = eval_loss(model, held_t, cos, sin, T)
            tps = seen / max(time.time() - t_start, 1e-6)
            curve.append({'step': step, 'seconds': round(el, 1), 'tokens': step * B * T, 'epochs': step * B * T / n_tok,
                          'train_loss': round(tl, 4), 'heldout_loss': round(hl, 4), 'lr': lr})
            log(f'step {step} ep {step * B * T / n_tok:.2f} train {tl:.3f} held-out {hl:.3f} lr {lr:.2e} {tps / 1e6:.2f}M tok/s')
            if hl < best[0]:
                best = (hl, {k: v.detach().clone() for k, v in model.state_dict().items()}, step)
            next_eval = el + eval_every
            if not checkpointed and frac >= a.checkpoint_at:
                checkpointed = True
                export_gguf(model, cfg, vocab_gguf, os.path.join(a.out, 'cachet-tiny.Q8_0.gguf'), 'checkpoint')
                json.dump({**results, 'curve': curve, 'partial': True}, open(os.path.join(a.out, 'results.json'), 'w'), indent=1)
        if frac >= 1.0:
            break
    results['curve'] = curve
    results['train'] = {'steps': step, 'tokens': step * B * T, 'epochs': step * B * T / n_tok,
                        'train_seconds': round(time.time() - t_start, 1), 'best_step': best[2],
                        'best_heldout_loss': best[0], 'tokens_per_second': seen / (time.time() - t_start)}
    model.load_state_dict(best[1])
    log(f'kept step {best[2]} (held-out loss {best[0]:.3f})')

    # 4. evaluate FIM single-line infilling
    tasks = heldout_line_tasks(heldout_texts, random.Random(2), a.heldout_tasks)
    results['fim_heldout'] = fim_single_line(model, tok, tasks, cos, sin)
    log('held-out single-line FIM:', {k: v for k, v in results['fim_heldout'].items() if k != 'examples'})
    he_path = os.path.join(a.carry, 'HumanEval-SingleLineInfilling.jsonl.gz')
    if os.path.exists(he_path):
        rows = [json.loads(l) for l in gzip.open(he_path, 'rt')][:a.humaneval]
        he = [(r['prompt'], r['canonical_solution'], r['suffix']) for r in rows]
        results['fim_humaneval_single_line'] = fim_single_line(model, tok, he, cos, sin)
        log('HumanEval single-line FIM:', {k: v for k, v in results['fim_humaneval_single_line'].items() if k != 'examples'})

    # 5. export
    results['gguf_bytes'] = export_gguf(model, cfg, vocab_gguf, os.path.join(a.out, 'cachet-tiny.Q8_0.gguf'),
                                        'Cachet-Tiny: small FIM code model for demos and tests')
    results['log'] = LOG
    json.dump(results, open(os.path.join(a.out, 'results.json'), 'w'), indent=1)
    log('done')


if __name__ == '__main__':
    main()
