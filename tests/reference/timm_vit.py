"""The ViT in plain PyTorch, with timm's layout and parameter names: the one model behind the test
fixtures (tests/reference/make_fixtures.py, float64) and the speed peer (bench/pytorch_peer.py,
float32). Pre-norm blocks with a fused qkv Linear and batched attention (matmul + softmax), exact
(erf) GELU, class-token or mean pooling, learned or sincos positions; no dropout, no layer scale.

cfg is a dict with Config's fields: image_size, channels, patch_size, dim, depth, heads, mlp_dim,
num_classes, pos_embed ("learned" | "sincos"), pool ("cls" | "mean"), qkv_bias, ln_eps.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def sincos_table(n, d):
    """pe[i][j] = sin(i / 10000**(j/d)) for even j, cos(i / 10000**((j-1)/d)) for odd j."""
    pe = torch.zeros(n, d, dtype=torch.float64)
    for i in range(n):
        for j in range(d):
            if j % 2 == 0:
                pe[i, j] = math.sin(i / (10000 ** (j / d)))
            else:
                pe[i, j] = math.cos(i / (10000 ** ((j - 1) / d)))
    return pe


def attention_core(qkv, heads):
    """timm layout: qkv [B,N,3D] -> out [B,N,D]; also returns the attention probs."""
    B, N, threeD = qkv.shape
    D = threeD // 3
    dh = D // heads
    q, k, v = qkv.reshape(B, N, 3, heads, dh).permute(2, 0, 3, 1, 4).unbind(0)
    att = (q @ k.transpose(-2, -1)) * (dh ** -0.5)
    att = att.softmax(dim=-1)
    out = (att @ v).transpose(1, 2).reshape(B, N, D)
    return out, att


class Attention(nn.Module):
    def __init__(self, dim, heads, qkv_bias, dtype, record):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, dtype=dtype)
        self.proj = nn.Linear(dim, dim, dtype=dtype)
        self.record = record
        self.last_att = None

    def forward(self, x):
        out, att = attention_core(self.qkv(x), self.heads)
        if self.record:
            self.last_att = att.detach()
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, dtype):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, dtype=dtype)
        self.fc2 = nn.Linear(hidden, dim, dtype=dtype)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="none"))


class Block(nn.Module):
    def __init__(self, cfg, dtype, record):
        super().__init__()
        d, eps = cfg["dim"], cfg["ln_eps"]
        self.norm1 = nn.LayerNorm(d, eps=eps, dtype=dtype)
        self.attn = Attention(d, cfg["heads"], cfg["qkv_bias"], dtype, record)
        self.norm2 = nn.LayerNorm(d, eps=eps, dtype=dtype)
        self.mlp = Mlp(d, cfg["mlp_dim"], dtype)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class PatchEmbed(nn.Module):
    def __init__(self, c, d, p, dtype):
        super().__init__()
        self.proj = nn.Conv2d(c, d, kernel_size=p, stride=p, dtype=dtype)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    """timm VisionTransformer layout/names. cls_token and a learned pos_embed start at zero (the
    callers set their values); a sincos pos_embed is a buffer holding the table rounded to float32.
    record_attention keeps each block's attention probabilities for attention_maps()."""

    def __init__(self, cfg, dtype=torch.float64, record_attention=False):
        super().__init__()
        self.cfg = cfg
        d = cfg["dim"]
        num_patches = (cfg["image_size"] // cfg["patch_size"]) ** 2
        self.num_tokens = num_patches + (1 if cfg["pool"] == "cls" else 0)
        if cfg["pool"] == "cls":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d, dtype=dtype))
        if cfg["pos_embed"] == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, d, dtype=dtype))
        else:
            table = sincos_table(self.num_tokens, d).to(torch.float32).to(dtype).unsqueeze(0)
            self.register_buffer("pos_embed", table, persistent=True)
        self.patch_embed = PatchEmbed(cfg["channels"], d, cfg["patch_size"], dtype)
        self.blocks = nn.Sequential(*[Block(cfg, dtype, record_attention)
                                      for _ in range(cfg["depth"])])
        if cfg["pool"] == "cls":
            self.norm = nn.LayerNorm(d, eps=cfg["ln_eps"], dtype=dtype)
        else:
            self.fc_norm = nn.LayerNorm(d, eps=cfg["ln_eps"], dtype=dtype)
        self.head = nn.Linear(d, cfg["num_classes"], dtype=dtype)

    def forward(self, images):
        x = self.patch_embed(images)
        if self.cfg["pool"] == "cls":
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        x = self.blocks(x)
        if self.cfg["pool"] == "cls":
            x = self.norm(x)[:, 0]
        else:
            x = self.fc_norm(x.mean(dim=1))
        return self.head(x)

    def attention_maps(self):
        return [blk.attn.last_att for blk in self.blocks]
