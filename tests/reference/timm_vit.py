"""The ViT in plain PyTorch, with timm's layout and parameter names: the one model behind the test
fixtures (tests/reference/make_fixtures.py, float64) and the speed peer (bench/pytorch_peer.py,
float32). Pre-norm blocks with a fused qkv Linear and batched attention (matmul + softmax), exact
(erf) GELU, class-token or mean pooling, learned or sincos positions; no dropout. The variants of
timm's VisionTransformer are there as timm writes them (vision_transformer.py, deit.py): register
tokens, DeiT's distillation token and head_dist, no_embed_class, LayerScale, norm_pre, qk_norm and
QuickGELU.

cfg is a dict with Config's fields: image_size, channels, patch_size, dim, depth, heads, mlp_dim,
num_classes, pos_embed ("learned" | "sincos"), pool ("cls" | "mean"), qkv_bias, ln_eps; and
optionally reg_tokens, dist_token, no_embed_class, layer_scale, norm_pre, patch_bias (default
True; timm's CLIP towers have none), qk_norm, act ("gelu" | "quick_gelu" | "gelu_tanh").
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
    def __init__(self, dim, heads, qkv_bias, dtype, record, qk_norm=False, eps=1e-6):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, dtype=dtype)
        if qk_norm:  # timm: LayerNorm(head_dim) on q and k after the head split
            self.q_norm = nn.LayerNorm(dim // heads, eps=eps, dtype=dtype)
            self.k_norm = nn.LayerNorm(dim // heads, eps=eps, dtype=dtype)
        self.qk_norm = qk_norm
        self.proj = nn.Linear(dim, dim, dtype=dtype)
        self.record = record
        self.last_att = None

    def forward(self, x):
        qkv = self.qkv(x)
        if self.qk_norm:
            B, N, _ = qkv.shape
            dh = qkv.shape[-1] // 3 // self.heads
            q, k, v = qkv.reshape(B, N, 3, self.heads, dh).unbind(2)
            qkv = torch.stack([self.q_norm(q), self.k_norm(k), v], 2).reshape(B, N, -1)
        out, att = attention_core(qkv, self.heads)
        if self.record:
            self.last_att = att.detach()
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, dtype, act="gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, dtype=dtype)
        self.fc2 = nn.Linear(hidden, dim, dtype=dtype)
        self.act = act

    def forward(self, x):
        h = self.fc1(x)
        if self.act == "quick_gelu":  # timm.layers.QuickGELU
            return self.fc2(h * torch.sigmoid(1.702 * h))
        if self.act == "gelu_tanh":  # timm's gelu_tanh: nn.GELU(approximate="tanh")
            return self.fc2(F.gelu(h, approximate="tanh"))
        return self.fc2(F.gelu(h, approximate="none"))


class LayerScale(nn.Module):
    def __init__(self, dim, dtype):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim, dtype=dtype))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, cfg, dtype, record):
        super().__init__()
        d, eps = cfg["dim"], cfg["ln_eps"]
        self.norm1 = nn.LayerNorm(d, eps=eps, dtype=dtype)
        self.attn = Attention(d, cfg["heads"], cfg["qkv_bias"], dtype, record,
                              cfg.get("qk_norm", False), eps)
        ls = cfg.get("layer_scale", False)
        self.ls1 = LayerScale(d, dtype) if ls else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=eps, dtype=dtype)
        self.mlp = Mlp(d, cfg["mlp_dim"], dtype, cfg.get("act", "gelu"))
        self.ls2 = LayerScale(d, dtype) if ls else nn.Identity()
        self.drop = None  # drop-path's factors [B, 2] (attention, MLP branch), or None

    def forward(self, x):
        # timm: x + drop_path1(ls1(attn(norm1(x)))), the factor 0 or 1 / keep per image.
        a = self.ls1(self.attn(self.norm1(x)))
        if self.drop is not None:
            a = a * self.drop[:, 0].reshape(-1, 1, 1)
        x = x + a
        m = self.ls2(self.mlp(self.norm2(x)))
        if self.drop is not None:
            m = m * self.drop[:, 1].reshape(-1, 1, 1)
        x = x + m
        return x


class StemLayer(nn.Module):
    """Layer 0 of timm's ConvStem under its names (conv), without its BatchNorm, with a bias and
    GELU: vitcpp's convolutional stem."""

    def __init__(self, c, channels, dtype):
        super().__init__()
        self.conv = nn.Conv2d(c, channels, kernel_size=3, stride=2, padding=1, dtype=dtype)

    def forward(self, x):
        return F.gelu(self.conv(x))


class PatchEmbed(nn.Module):
    """stem > 0: a convolutional stem of that many channels (as timm's HybridEmbed names it,
    backbone), then the projection of kernel = stride = p / 2 on its output."""

    def __init__(self, c, d, p, dtype, bias=True, stem=0):
        super().__init__()
        if stem:
            self.backbone = nn.Sequential(StemLayer(c, stem, dtype))
            c, p = stem, p // 2
        self.proj = nn.Conv2d(c, d, kernel_size=p, stride=p, bias=bias, dtype=dtype)

    def forward(self, x):
        if hasattr(self, "backbone"):
            x = self.backbone(x)
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
        self.dist = cfg.get("dist_token", False)
        self.reg = cfg.get("reg_tokens", 0)
        self.no_embed_class = cfg.get("no_embed_class", False)
        # Average pooling's variants: a class token beside it (timm class_token=True,
        # global_pool='avg'), the final norm on the tokens before it (timm fc_norm=False).
        self.has_cls = cfg["pool"] == "cls" or cfg.get("mean_class_token", False)
        self.norm_first = cfg["pool"] == "cls" or cfg.get("mean_after_norm", False)
        self.num_prefix = (1 if self.has_cls else 0) + (1 if self.dist else 0) + self.reg
        self.num_tokens = num_patches + self.num_prefix
        pos_rows = num_patches if self.no_embed_class else self.num_tokens
        if self.has_cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d, dtype=dtype))
        if self.dist:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, d, dtype=dtype))
        if self.reg:
            self.reg_token = nn.Parameter(torch.zeros(1, self.reg, d, dtype=dtype))
        if cfg["pos_embed"] == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, pos_rows, d, dtype=dtype))
        else:
            table = sincos_table(pos_rows, d).to(torch.float32).to(dtype).unsqueeze(0)
            self.register_buffer("pos_embed", table, persistent=True)
        # patch_bias False: timm's CLIP towers (no bias before norm_pre).
        self.patch_embed = PatchEmbed(cfg["channels"], d, cfg["patch_size"], dtype,
                                      cfg.get("patch_bias", True), cfg.get("stem_channels", 0))
        if cfg.get("norm_pre", False):
            self.norm_pre = nn.LayerNorm(d, eps=cfg["ln_eps"], dtype=dtype)
        self.blocks = nn.Sequential(*[Block(cfg, dtype, record_attention)
                                      for _ in range(cfg["depth"])])
        if self.norm_first:
            self.norm = nn.LayerNorm(d, eps=cfg["ln_eps"], dtype=dtype)
        else:
            self.fc_norm = nn.LayerNorm(d, eps=cfg["ln_eps"], dtype=dtype)
        self.head = nn.Linear(d, cfg["num_classes"], dtype=dtype)
        if self.dist:
            self.head_dist = nn.Linear(d, cfg["num_classes"], dtype=dtype)

    def forward(self, images):
        x = self.patch_embed(images)
        B = x.shape[0]
        prefix = []
        if self.has_cls:
            prefix.append(self.cls_token.expand(B, -1, -1))
        if self.dist:
            prefix.append(self.dist_token.expand(B, -1, -1))
        if self.reg:
            prefix.append(self.reg_token.expand(B, -1, -1))
        if self.no_embed_class:
            x = torch.cat(prefix + [x + self.pos_embed], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + self.pos_embed
        if self.cfg.get("norm_pre", False):
            x = self.norm_pre(x)
        x = self.blocks(x)
        if self.dist:
            x = self.norm(x)
            return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2
        if self.cfg["pool"] == "cls":
            x = self.norm(x)[:, 0]
        elif self.norm_first:
            x = self.norm(x)[:, self.num_prefix:].mean(dim=1)
        else:
            x = self.fc_norm(x[:, self.num_prefix:].mean(dim=1))
        return self.head(x)

    def set_drop_path(self, factors):
        """factors [B, depth, 2] (each block's attention and MLP branch per image), or None."""
        for i, blk in enumerate(self.blocks):
            blk.drop = None if factors is None else factors[:, i]

    def attention_maps(self):
        return [blk.attn.last_att for blk in self.blocks]
