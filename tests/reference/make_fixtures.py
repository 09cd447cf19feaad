#!/usr/bin/python3
"""PyTorch reference fixtures for the vitcpp C++ test suite.

Run from the repository root with Debian's system Python (PyTorch 1.13):

    /usr/bin/python3 tests/reference/make_fixtures.py tests/fixtures

It writes these safetensors files into the given directory:

  ops.safetensors      one reference per op: layernorm, linear, gelu (erf),
                       timm-layout attention, patch_embed, cls_prepend,
                       pos_add (also at patch dropout's kept patches), mean_pool,
                       cls_pool, cross_entropy (with and without label
                       smoothing), the sincos position table,
                       AdamW (3 steps, with and without weight decay), Adam with L2
                       weight decay, and
                       clip_grad_norm_.  Forward outputs and autograd
                       gradients for random upstream gradients.
  model_a.safetensors  a whole timm-style ViT (learned pos_embed, cls pool,
  model_b.safetensors  ... sincos pos_embed, mean pool, no qkv bias)
  model_c.safetensors  ... the blog post's MNIST model (sincos, cls pool)
  model_d..f           ... timm's variants (CONFIGS below)
  model_g, model_h     ... drop-path with given factors (`input.drop_path`
                       [B, depth, 2], the same for the forward and every step)
  model_i, model_j     ... average pooling beside a class token, and after the
                       final norm (timm fc_norm=False)
  model_k              ... a convolutional stem (3x3 stride-2 conv, GELU) before
                       the patch projection
                       each with: initial parameters under their timm names,
                       `input.images`, `input.labels`, `out.logits`,
                       `out.loss`, `grad.<name>` for every trainable
                       parameter, and 5 AdamW steps on the same batch
                       (`adamw.loss`, `adamw.grad_norm`,
                       `adamw.final.<name>`).  `__metadata__` holds "config",
                       "recipe" and "clip_active" as JSON strings.

Conventions:
  * Everything is computed in float64 and stored as little-endian F32.
    Every *input* (random data, initial parameters, the sincos table) is
    first rounded to a float32-representable value and the float64
    computation uses exactly that rounded value, so what the C++ side reads
    is exactly what the reference consumed.  Outputs are float64 results
    rounded to float32 once.
  * Integer labels are stored as F32 (exact small integers); scalars have
    shape [1].
  * Fixed seeds (one torch.Generator per fixture) and one intra-op thread,
    so reruns produce byte-identical files.
  * clip_grad_norm_ is torch's: coef = max_norm / (total_norm + 1e-6),
    applied as min(coef, 1) (norm type 2 over all gradients together).
"""

import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from timm_vit import ViT, attention_core, sincos_table  # the shared model (same directory)

DT = torch.float64
torch.set_num_threads(1)
torch.set_default_dtype(DT)

CLIP_COEF_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_ adds this to the norm


# ----------------------------------------------------------------------------
# safetensors writer / reader (written from the format description)
# ----------------------------------------------------------------------------

def _as_f32_bytes(t):
    a = t.detach().to("cpu", DT).contiguous().numpy().astype("<f4")
    return a.tobytes(order="C"), list(a.shape)


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, tensor) in the order to write; metadata: str->str."""
    header = {}
    blobs = []
    offset = 0
    seen = set()
    for name, t in tensors:
        assert name not in seen, "duplicate tensor name " + name
        seen.add(name)
        raw, shape = _as_f32_bytes(t)
        if not shape:
            raise ValueError("scalar %s must be stored with shape [1]" % name)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    for k, v in metadata.items():
        assert isinstance(k, str) and isinstance(v, str), (k, v)
    header["__metadata__"] = dict(metadata)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (-(8 + len(hjson))) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    assert (8 + hlen) % 8 == 0
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    body = data[8 + hlen:]
    out = {}
    end_max = 0
    for name, info in header.items():
        assert info["dtype"] == "F32"
        b, e = info["data_offsets"]
        arr = np.frombuffer(body[b:e], dtype="<f4").reshape(info["shape"])
        out[name] = arr
        end_max = max(end_max, e)
    assert end_max == len(body), "data section has trailing bytes"
    return out, meta


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

def f32(t):
    """Round to the nearest float32-representable value, keep float64."""
    return t.to(torch.float32).to(DT)


def gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def randn(g, *shape, scale=1.0):
    return f32(torch.randn(*shape, generator=g, dtype=DT) * scale)


def leaf(t):
    return t.clone().detach().requires_grad_(True)


def scalar(x):
    return torch.as_tensor(x, dtype=DT).reshape(1)


def fmt(x):
    return repr(x) if isinstance(x, float) else str(x)


# ----------------------------------------------------------------------------
# File 1: ops
# ----------------------------------------------------------------------------

def make_ops():
    T = []  # (name, tensor)
    M = {}

    def put(name, t):
        T.append((name, t.detach()))

    # layernorm ------------------------------------------------------------
    g = gen(1001)
    rows, dim, eps = 6, 10, 1e-6
    scale_row = f32(torch.tensor([0.5, 1.0, 2.0, 4.0, 0.1, 10.0], dtype=DT)).reshape(rows, 1)
    mean_row = f32(torch.tensor([0.0, 3.0, -2.0, 10.0, -0.5, 100.0], dtype=DT)).reshape(rows, 1)
    x = f32(torch.randn(rows, dim, generator=g, dtype=DT) * scale_row + mean_row)
    w = f32(1 + 0.1 * torch.randn(dim, generator=g, dtype=DT))
    b = randn(g, dim, scale=0.1)
    dy = randn(g, rows, dim)
    xl, wl, bl = leaf(x), leaf(w), leaf(b)
    y = F.layer_norm(xl, (dim,), wl, bl, eps)
    y.backward(dy)
    put("layernorm.x", x); put("layernorm.weight", w); put("layernorm.bias", b)
    put("layernorm.y", y); put("layernorm.dy", dy)
    put("layernorm.dx", xl.grad); put("layernorm.dweight", wl.grad); put("layernorm.dbias", bl.grad)
    M["layernorm.eps"] = fmt(eps)

    # linear ---------------------------------------------------------------
    g = gen(1002)
    x = randn(g, 7, 5); w = randn(g, 6, 5, scale=1 / math.sqrt(5)); b = randn(g, 6, scale=0.1)
    dy = randn(g, 7, 6)
    xl, wl, bl = leaf(x), leaf(w), leaf(b)
    y = F.linear(xl, wl, bl)
    y.backward(dy)
    put("linear.x", x); put("linear.weight", w); put("linear.bias", b)
    put("linear.y", y); put("linear.dy", dy)
    put("linear.dx", xl.grad); put("linear.dweight", wl.grad); put("linear.dbias", bl.grad)

    # gelu -----------------------------------------------------------------
    g = gen(1003)
    x = f32(torch.cat([torch.linspace(-6, 6, 48, dtype=DT), torch.randn(16, generator=g, dtype=DT)]))
    dy = randn(g, 64)
    xl = leaf(x)
    y = F.gelu(xl, approximate="none")
    y.backward(dy)
    put("gelu.x", x); put("gelu.y", y); put("gelu.dy", dy); put("gelu.dx", xl.grad)
    M["gelu.approximate"] = "none"

    # attention ------------------------------------------------------------
    g = gen(1004)
    B, N, D, H = 2, 5, 12, 3
    qkv = randn(g, B, N, 3 * D, scale=1.5)
    dout = randn(g, B, N, D)
    ql = leaf(qkv)
    out, att = attention_core(ql, H)
    out.backward(dout)
    assert att.max().item() > 0.3, "attention op fixture is near-uniform"
    put("attention.qkv", qkv); put("attention.out", out); put("attention.dout", dout)
    put("attention.dqkv", ql.grad)
    M["attention.heads"] = str(H)
    M["attention.head_dim"] = str(D // H)
    M["attention.scale"] = fmt((D // H) ** -0.5)

    # patch_embed ----------------------------------------------------------
    g = gen(1005)
    images = randn(g, 2, 3, 8, 8)
    w = randn(g, 5, 3, 4, 4, scale=1 / math.sqrt(3 * 16))
    b = randn(g, 5, scale=0.1)
    dout = randn(g, 2, 4, 5)
    il, wl, bl = leaf(images), leaf(w), leaf(b)
    out = F.conv2d(il, wl, bl, stride=4).flatten(2).transpose(1, 2)
    out.backward(dout)
    put("patch_embed.images", images); put("patch_embed.weight", w); put("patch_embed.bias", b)
    put("patch_embed.out", out); put("patch_embed.dout", dout)
    put("patch_embed.dimages", il.grad); put("patch_embed.dweight", wl.grad); put("patch_embed.dbias", bl.grad)
    M["patch_embed.patch_size"] = "4"
    M["patch_embed.stride"] = "4"

    # cls_prepend ----------------------------------------------------------
    g = gen(1006)
    tokens = randn(g, 2, 4, 5); cls = randn(g, 1, 1, 5); dout = randn(g, 2, 5, 5)
    tl, cl = leaf(tokens), leaf(cls)
    out = torch.cat([cl.expand(2, -1, -1), tl], dim=1)
    out.backward(dout)
    put("cls_prepend.tokens", tokens); put("cls_prepend.cls", cls); put("cls_prepend.out", out)
    put("cls_prepend.dout", dout); put("cls_prepend.dtokens", tl.grad); put("cls_prepend.dcls", cl.grad)

    # pos_add --------------------------------------------------------------
    g = gen(1007)
    x = randn(g, 2, 5, 5); pos = randn(g, 1, 5, 5); dout = randn(g, 2, 5, 5)
    xl, pl = leaf(x), leaf(pos)
    out = xl + pl
    out.backward(dout)
    put("pos_add.x", x); put("pos_add.pos", pos); put("pos_add.out", out)
    put("pos_add.dout", dout); put("pos_add.dx", xl.grad); put("pos_add.dpos", pl.grad)

    # pos_add at patch dropout's kept patches -------------------------------
    g = gen(1020)
    x = randn(g, 2, 4, 3); pos = randn(g, 1, 5, 3); dout = randn(g, 2, 4, 3)
    keep = torch.tensor([[2, 0, 3], [1, 1, 3]])  # image 1 keeps patch 1 twice: its gradients add
    xl, pl = leaf(x), leaf(pos)
    # The class token (row 0), then the kept patches, each at the position it came from (row
    # 1 + keep), as timm's PatchDropout selects them after the positions are added.
    rows = torch.cat([torch.zeros(2, 1, dtype=torch.long), keep + 1], dim=1)
    out = xl + pl[0][rows]
    out.backward(dout)
    put("pos_keep.x", x); put("pos_keep.pos", pos); put("pos_keep.keep", keep.to(DT))
    put("pos_keep.out", out); put("pos_keep.dout", dout); put("pos_keep.dx", xl.grad)
    put("pos_keep.dpos", pl.grad)

    # mean_pool ------------------------------------------------------------
    g = gen(1008)
    x = randn(g, 3, 4, 5); dout = randn(g, 3, 5)
    xl = leaf(x)
    out = xl.mean(1)
    out.backward(dout)
    put("mean_pool.x", x); put("mean_pool.out", out); put("mean_pool.dout", dout); put("mean_pool.dx", xl.grad)

    # cls_pool -------------------------------------------------------------
    g = gen(1009)
    x = randn(g, 3, 4, 5); dout = randn(g, 3, 5)
    xl = leaf(x)
    out = xl[:, 0]
    out.backward(dout)
    put("cls_pool.x", x); put("cls_pool.out", out); put("cls_pool.dout", dout); put("cls_pool.dx", xl.grad)

    # cross_entropy --------------------------------------------------------
    g = gen(1010)
    logits = randn(g, 6, 7, scale=3.0)
    labels = torch.randint(0, 7, (6,), generator=g)
    put("cross_entropy.logits", logits); put("cross_entropy.labels", labels.to(DT))
    for prefix, ls in (("cross_entropy", 0.1), ("cross_entropy_nosmooth", 0.0)):
        ll = leaf(logits)
        loss = F.cross_entropy(ll, labels, label_smoothing=ls, reduction="mean")
        loss.backward()
        put(prefix + ".loss", loss.reshape(1)); put(prefix + ".dlogits", ll.grad)
        M[prefix + ".label_smoothing"] = fmt(ls)
    M["cross_entropy.reduction"] = "mean"

    # sincos ---------------------------------------------------------------
    put("sincos.a", sincos_table(50, 8))
    put("sincos.b", sincos_table(10, 7))
    M["sincos.formula"] = "pe[i][j] = sin(i / 10000**(j/D)) if j even else cos(i / 10000**((j-1)/D))"

    # adamw ----------------------------------------------------------------
    g = gen(1011)
    p0 = randn(g, 20)
    g1 = randn(g, 20); g2 = randn(g, 20); g3 = randn(g, 20)
    g3[0] = 0.0; g3[7] = 0.0; g3[13] = 0.0
    g3[2] = 1e-9; g3[9] = -1e-9; g3[17] = 1e-9
    g3 = f32(g3)
    put("adamw.p0", p0); put("adamw.g1", g1); put("adamw.g2", g2); put("adamw.g3", g3)
    lr, betas, eps = 1e-2, (0.9, 0.999), 1e-8
    for prefix, wd in (("adamw", 0.05), ("adamw_nodecay", 0.0)):
        p = nn.Parameter(p0.clone())
        opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=wd)
        for gr in (g1, g2, g3):
            opt.zero_grad(set_to_none=True)
            p.grad = gr.clone()
            opt.step()
        put(prefix + ".p3", p)
        if prefix == "adamw":
            st = opt.state[p]
            put("adamw.m3", st["exp_avg"]); put("adamw.v3", st["exp_avg_sq"])
        M[prefix + ".weight_decay"] = fmt(wd)
    # Adam with L2 weight decay (torch.optim.Adam's weight_decay adds wd * p to the gradient).
    p = nn.Parameter(p0.clone())
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps, weight_decay=0.05)
    for gr in (g1, g2, g3):
        opt.zero_grad(set_to_none=True)
        p.grad = gr.clone()
        opt.step()
    put("adam_l2.p3", p)
    M["adam_l2.weight_decay"] = fmt(0.05)
    M["adamw.lr"] = fmt(lr); M["adamw.beta1"] = fmt(betas[0]); M["adamw.beta2"] = fmt(betas[1])
    M["adamw.eps"] = fmt(eps); M["adamw.steps"] = "3"

    # clip -----------------------------------------------------------------
    g = gen(1012)
    c0 = randn(g, 7, scale=2.0); c1 = randn(g, 3, 4, scale=2.0)
    max_norm = 1.0
    pa, pb = nn.Parameter(c0.clone()), nn.Parameter(c1.clone())
    pa.grad = c0.clone(); pb.grad = c1.clone()
    norm = torch.nn.utils.clip_grad_norm_([pa, pb], max_norm, norm_type=2.0)
    assert norm.item() > max_norm
    put("clip.g0", c0); put("clip.g1", c1); put("clip.norm", norm.reshape(1))
    put("clip.g0_clipped", pa.grad); put("clip.g1_clipped", pb.grad)
    M["clip.max_norm"] = fmt(max_norm)
    M["clip.norm_type"] = "2.0"
    M["clip.coef_eps"] = fmt(CLIP_COEF_EPS)

    return T, M


# ----------------------------------------------------------------------------
# Files 2-4: the ViT (the model itself is in timm_vit.py)
# ----------------------------------------------------------------------------

def ordered_names(model):
    """vitcpp's order (timm's, the prefix tokens first): cls_token, dist_token, reg_token,
    pos_embed, patch_embed.*, norm_pre.*, blocks.*, norm/fc_norm, head, head_dist."""
    params = dict(model.named_parameters())
    first = [n for n in ("cls_token", "dist_token", "reg_token") if n in params] + ["pos_embed"]
    return first + [n for n in params if n not in first]


def init_values(model, g):
    """Deterministic test init (not timm's): every path non-trivial."""
    cfg = model.cfg
    vals = {}
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name in ("cls_token", "dist_token", "reg_token"):
            v = 0.5 * torch.randn(shape, generator=g, dtype=DT)
        elif name.endswith(".gamma"):  # LayerScale: away from 1 so that it matters
            v = 0.6 + 0.3 * torch.randn(shape, generator=g, dtype=DT)
        elif name == "pos_embed":
            v = 0.5 * torch.randn(shape, generator=g, dtype=DT)
        elif name.endswith(".bias"):  # linear, conv and LayerNorm biases alike
            v = 0.1 * torch.randn(shape, generator=g, dtype=DT)
        elif name.endswith(".weight") and p.dim() == 1:  # LayerNorm weight
            v = 1 + 0.1 * torch.randn(shape, generator=g, dtype=DT)
        elif name.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            v = torch.randn(shape, generator=g, dtype=DT) / math.sqrt(fan_in)
            if name.endswith("attn.qkv.weight"):
                v = v * 1.5
        else:
            raise AssertionError("unhandled parameter " + name)
        vals[name] = f32(v)
    return vals


def load_values(model, vals):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(vals[name])


DECAY_PREFIXES = ("patch_embed.backbone.", "patch_embed.proj.", "attn.qkv.", "attn.proj.", "mlp.fc1.", "mlp.fc2.", "head.",
                  "head_dist.")


def wants_decay(name, p):
    if not name.endswith(".weight") or p.dim() < 2:
        return False
    return any(name.startswith(pre) or ("." + pre) in name for pre in DECAY_PREFIXES)


def reference_forward_loops(vals, pos_table, cfg, images):
    """Independent, loop-based forward (no nn modules, no batched attention)."""
    B, C, S, _ = images.shape
    P, D, H = cfg["patch_size"], cfg["dim"], cfg["heads"]
    dh = D // H
    gp = S // P
    eps = cfg["ln_eps"]

    def ln(vec, w, b):
        mu = sum(vec[i] for i in range(vec.shape[0])) / vec.shape[0]
        var = sum((vec[i] - mu) ** 2 for i in range(vec.shape[0])) / vec.shape[0]
        return (vec - mu) / math.sqrt(var + eps) * w + b

    def lin(vec, w, b):
        out = torch.mv(w, vec)
        return out + b if b is not None else out

    def gelu(vec):
        return torch.tensor([0.5 * t * (1.0 + math.erf(t / math.sqrt(2.0))) for t in vec.tolist()], dtype=DT)

    logits = []
    for bi in range(B):
        toks = []
        wflat = vals["patch_embed.proj.weight"].reshape(D, -1)
        for r in range(gp):
            for c in range(gp):
                patch = images[bi, :, r * P:(r + 1) * P, c * P:(c + 1) * P].reshape(-1)
                toks.append(lin(patch, wflat, vals["patch_embed.proj.bias"]))
        if cfg["pool"] == "cls":
            toks = [vals["cls_token"].reshape(D)] + toks
        pos = pos_table.reshape(len(toks), D)
        toks = [t + pos[i] for i, t in enumerate(toks)]
        N = len(toks)
        for li in range(cfg["depth"]):
            pre = "blocks.%d." % li
            hs = [ln(t, vals[pre + "norm1.weight"], vals[pre + "norm1.bias"]) for t in toks]
            qkvs = [lin(h, vals[pre + "attn.qkv.weight"], vals.get(pre + "attn.qkv.bias")) for h in hs]
            heads_out = [torch.zeros(D, dtype=DT) for _ in range(N)]
            for h in range(H):
                for i in range(N):
                    q = qkvs[i][h * dh:(h + 1) * dh]
                    scores = [float(torch.dot(q, qkvs[j][D + h * dh:D + (h + 1) * dh])) / math.sqrt(dh)
                              for j in range(N)]
                    m = max(scores)
                    e = [math.exp(s - m) for s in scores]
                    z = sum(e)
                    acc = torch.zeros(dh, dtype=DT)
                    for j in range(N):
                        acc = acc + (e[j] / z) * qkvs[j][2 * D + h * dh:2 * D + (h + 1) * dh]
                    heads_out[i][h * dh:(h + 1) * dh] = acc
            toks = [toks[i] + lin(heads_out[i], vals[pre + "attn.proj.weight"], vals[pre + "attn.proj.bias"])
                    for i in range(N)]
            new = []
            for t in toks:
                h2 = ln(t, vals[pre + "norm2.weight"], vals[pre + "norm2.bias"])
                m1 = gelu(lin(h2, vals[pre + "mlp.fc1.weight"], vals[pre + "mlp.fc1.bias"]))
                new.append(t + lin(m1, vals[pre + "mlp.fc2.weight"], vals[pre + "mlp.fc2.bias"]))
            toks = new
        if cfg["pool"] == "cls":
            feat = ln(toks[0], vals["norm.weight"], vals["norm.bias"])
        else:
            feat = ln(sum(toks) / N, vals["fc_norm.weight"], vals["fc_norm.bias"])
        logits.append(lin(feat, vals["head.weight"], vals["head.bias"]))
    return torch.stack(logits)


def total_grad_norm(params):
    return torch.norm(torch.stack([torch.norm(p.grad.detach(), 2.0) for p in params]), 2.0)


def drop_path_factors(g, B, depth, rate):
    """Drop-path's factors [B, depth, 2] as vitcpp's sample_drop_path makes them: block l's
    branches kept with probability 1 - p, p = float32(rate * l / (depth - 1)), as the factor
    float32(1 / (1 - p)), else 0; the uniform draws from g."""
    f = torch.zeros(B, depth, 2, dtype=DT)
    for b in range(B):
        for l in range(depth):
            p = float(np.float32(rate * l / (depth - 1))) if depth > 1 else 0.0
            keep = 1.0 - p
            for k in range(2):
                if torch.rand(1, generator=g, dtype=DT).item() < keep:
                    f[b, l, k] = float(np.float32(1.0 / keep))
    return f


def make_model(cfg, recipe, seed, check_loops=False):
    g = gen(seed)
    model = ViT(cfg, dtype=DT, record_attention=True)
    names = ordered_names(model)
    vals = init_values(model, g)
    B, C, S = recipe["batch"], cfg["channels"], cfg["image_size"]
    images = randn(g, B, C, S, S)
    labels = torch.randint(0, cfg["num_classes"], (B,), generator=g)
    ls = recipe["label_smoothing"]

    T = []

    def put(name, t):
        T.append((name, t.detach()))

    # initial parameters (and the sincos buffer) under timm names
    for n in names:
        put(n, vals[n] if n in vals else model.pos_embed)
    put("input.images", images)
    put("input.labels", labels.to(DT))
    if recipe.get("drop_path", 0) > 0:  # the same factors for the forward and every step
        drop = drop_path_factors(g, B, cfg["depth"], recipe["drop_path"])
        assert (drop == 0).any() and (drop > 1).any() and (drop[:, 0] == 0).sum() == 0
        put("input.drop_path", drop)
        model.set_drop_path(drop)

    # forward / backward at the initial weights
    load_values(model, vals)
    model.zero_grad(set_to_none=True)
    logits = model(images)
    loss = F.cross_entropy(logits, labels, label_smoothing=ls)
    loss.backward()
    max_att = max(a.max().item() for a in model.attention_maps())
    assert max_att > 0.3, "attention is near-uniform (max prob %.3f)" % max_att
    if check_loops:
        ref = reference_forward_loops(vals, model.pos_embed.detach(), cfg, images)
        err = (ref - logits.detach()).abs().max().item()
        assert err < 1e-10, "module forward disagrees with loop reference: %g" % err
        ref_loss = F.cross_entropy(ref, labels, label_smoothing=ls)
        assert abs(ref_loss.item() - loss.item()) < 1e-10
        print("  loop-reference check: max |logits diff| = %.3g" % err)
    put("out.logits", logits)
    put("out.loss", loss.reshape(1))
    params = dict(model.named_parameters())
    for n in names:
        if n in params:
            put("grad." + n, params[n].grad)

    # 5 AdamW steps on the same batch
    load_values(model, vals)
    params = dict(model.named_parameters())
    trainable = [params[n] for n in names if n in params]
    decay = [params[n] for n in names if n in params and wants_decay(n, params[n])]
    no_decay = [params[n] for n in names if n in params and not wants_decay(n, params[n])]
    # (the stem's conv,) patch proj, qkv/proj/fc1/fc2 per block, head (and head_dist)
    assert len(decay) == ((1 if cfg.get("stem_channels") else 0) + 1 + 4 * cfg["depth"] + 1 +
                          (1 if cfg.get("dist_token") else 0))
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe["lr"], betas=(recipe["beta1"], recipe["beta2"]), eps=recipe["eps"])
    losses, norms, active = [], [], []
    clip = recipe["clip_grad_norm"]
    for _ in range(recipe["steps"]):
        opt.zero_grad(set_to_none=True)
        lt = F.cross_entropy(model(images), labels, label_smoothing=ls)
        lt.backward()
        if clip > 0:
            tn = torch.nn.utils.clip_grad_norm_(trainable, clip, norm_type=2.0)
            active.append(bool(clip / (tn.item() + CLIP_COEF_EPS) < 1.0))
        else:
            tn = total_grad_norm(trainable)
            active.append(False)
        opt.step()
        losses.append(lt.item())
        norms.append(tn.item())
    for a, b in zip(losses, losses[1:]):
        assert b < a, "loss did not decrease: %r" % losses
    put("adamw.loss", torch.tensor(losses, dtype=DT))
    put("adamw.grad_norm", torch.tensor(norms, dtype=DT))
    for n in names:
        if n in params:
            put("adamw.final." + n, params[n])

    meta = {
        "config": json.dumps(cfg),
        "recipe": json.dumps(recipe),
        "clip_active": json.dumps(active),
    }
    info = {"losses": losses, "grad_norms": norms, "clip_active": active, "max_att": max_att}
    return T, meta, info


CONFIGS = {
    "model_a": (
        dict(image_size=16, channels=1, patch_size=4, dim=32, depth=2, heads=4, mlp_dim=64,
             num_classes=10, pos_embed="learned", pool="cls", qkv_bias=True, ln_eps=1e-6),
        dict(label_smoothing=0.1, lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=1.0, steps=5, batch=4),
        2001),
    "model_b": (
        dict(image_size=12, channels=3, patch_size=4, dim=24, depth=2, heads=3, mlp_dim=48,
             num_classes=7, pos_embed="sincos", pool="mean", qkv_bias=False, ln_eps=1e-6),
        dict(label_smoothing=0.0, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1,
             clip_grad_norm=0, steps=5, batch=5),
        2002),
    "model_c": (
        dict(image_size=28, channels=1, patch_size=4, dim=8, depth=2, heads=2, mlp_dim=32,
             num_classes=10, pos_embed="sincos", pool="cls", qkv_bias=True, ln_eps=1e-5),
        dict(label_smoothing=0.0, lr=5e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
             clip_grad_norm=0, steps=5, batch=8),
        2003),
    # timm's variants: register tokens, positions on the patches only, LayerScale, norm_pre,
    # qk-norm and QuickGELU together (DINOv2-reg / CLIP-like) ...
    "model_d": (
        dict(image_size=12, channels=3, patch_size=4, dim=16, depth=2, heads=2, mlp_dim=32,
             num_classes=6, pos_embed="learned", pool="cls", qkv_bias=True, ln_eps=1e-5,
             reg_tokens=2, no_embed_class=True, layer_scale=True, norm_pre=True, qk_norm=True,
             act="quick_gelu"),
        dict(label_smoothing=0.1, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=0, steps=5, batch=4),
        2004),
    # ... DeiT distilled (two heads averaged) ...
    "model_e": (
        dict(image_size=12, channels=1, patch_size=3, dim=16, depth=2, heads=4, mlp_dim=32,
             num_classes=5, pos_embed="learned", pool="cls", qkv_bias=True, ln_eps=1e-6,
             dist_token=True),
        dict(label_smoothing=0.0, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=1.0, steps=5, batch=4),
        2005),
    # ... and average pooling that skips register tokens.
    "model_f": (
        dict(image_size=8, channels=2, patch_size=4, dim=12, depth=1, heads=3, mlp_dim=24,
             num_classes=4, pos_embed="learned", pool="mean", qkv_bias=False, ln_eps=1e-6,
             reg_tokens=3, layer_scale=True),
        dict(label_smoothing=0.0, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=0, steps=5, batch=3),
        2006),
    # Drop-path (given per image, block and branch: input.drop_path) with the class token ...
    "model_g": (
        dict(image_size=12, channels=3, patch_size=4, dim=16, depth=3, heads=2, mlp_dim=32,
             num_classes=5, pos_embed="learned", pool="cls", qkv_bias=True, ln_eps=1e-6),
        dict(label_smoothing=0.1, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=0, steps=5, batch=6, drop_path=0.6),
        2007),
    # ... and with LayerScale and average pooling.
    "model_h": (
        dict(image_size=8, channels=1, patch_size=2, dim=12, depth=3, heads=3, mlp_dim=24,
             num_classes=4, pos_embed="learned", pool="mean", qkv_bias=True, ln_eps=1e-6,
             layer_scale=True),
        dict(label_smoothing=0.0, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=1.0, steps=5, batch=5, drop_path=0.6),
        2008),
    # Average pooling's variants: a class token beside it (EVA, MAE fine-tunes) ...
    "model_i": (
        dict(image_size=12, channels=3, patch_size=4, dim=16, depth=2, heads=2, mlp_dim=32,
             num_classes=5, pos_embed="learned", pool="mean", qkv_bias=True, ln_eps=1e-6,
             mean_class_token=True, reg_tokens=1),
        dict(label_smoothing=0.1, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=0, steps=5, batch=4),
        2009),
    # ... and the final norm on the tokens before it (timm fc_norm=False, the *_gap_* models).
    "model_j": (
        dict(image_size=8, channels=1, patch_size=2, dim=12, depth=2, heads=3, mlp_dim=24,
             num_classes=4, pos_embed="learned", pool="mean", qkv_bias=False, ln_eps=1e-6,
             mean_after_norm=True, layer_scale=True),
        dict(label_smoothing=0.0, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=1.0, steps=5, batch=5),
        2010),
    # A convolutional stem (3 x 3 / 2, GELU) before a 2 x 2 projection: 4 x 4 patches.
    "model_k": (
        dict(image_size=12, channels=3, patch_size=4, dim=16, depth=2, heads=2, mlp_dim=32,
             num_classes=5, pos_embed="learned", pool="cls", qkv_bias=True, ln_eps=1e-6,
             stem_channels=5),
        dict(label_smoothing=0.1, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
             clip_grad_norm=1.0, steps=5, batch=4),
        2011),
}


def emit(outdir, fname, T, M):
    path = os.path.join(outdir, fname)
    write_safetensors(path, T, M)
    size = os.path.getsize(path)
    back, meta = read_safetensors(path)
    assert list(back.keys()) == [n for n, _ in T] and meta == M
    for n, t in T:
        assert np.array_equal(back[n], t.detach().numpy().astype("<f4")), n
        assert np.all(np.isfinite(back[n])), n
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print("%-22s %8d bytes  %3d tensors  sha256 %s" % (fname, size, len(T), digest[:16]))
    assert size < 1_000_000, "%s is too large" % fname


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        print("usage: /usr/bin/python3 tests/reference/make_fixtures.py OUTDIR")
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)

    T, M = make_ops()
    emit(outdir, "ops.safetensors", T, M)

    for name, (cfg, recipe, seed) in CONFIGS.items():
        print("%s:" % name)
        T, M, info = make_model(cfg, recipe, seed, check_loops=(name == "model_a"))
        print("  losses      ", ["%.6f" % v for v in info["losses"]])
        print("  grad norms  ", ["%.4f" % v for v in info["grad_norms"]])
        print("  clip_active ", info["clip_active"], " max attention prob %.3f" % info["max_att"])
        emit(outdir, name + ".safetensors", T, M)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
