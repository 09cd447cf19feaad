#!/usr/bin/python3
"""Writes the committed seed corpus of the fuzz harnesses (fuzz/corpus/*): small valid inputs
of each format, from which libFuzzer mutates. Deterministic.

    /usr/bin/python3 fuzz/make_corpus.py fuzz/corpus
"""
import gzip
import io
import json
import os
import struct
import sys

from PIL import Image


def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_pair(images, labels):
    # fuzz_idx.cpp: the first byte times 4 is the length of the images file.
    assert len(images) % 4 == 0 and len(images) // 4 < 256
    return bytes([len(images) // 4]) + images + labels


def safetensors(tensors, metadata):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def tiny_checkpoint():
    # image 8, patch 4, dim 8, heads 2, depth 1, mlp 16, 3 classes, learned positions, class token
    d, m, k, n = 8, 16, 3, 5
    shapes = [("cls_token", [1, 1, d]), ("pos_embed", [1, n, d]),
              ("patch_embed.proj.weight", [d, 1, 4, 4]), ("patch_embed.proj.bias", [d])]
    p = "blocks.0."
    shapes += [(p + "norm1.weight", [d]), (p + "norm1.bias", [d]),
               (p + "attn.qkv.weight", [3 * d, d]), (p + "attn.qkv.bias", [3 * d]),
               (p + "attn.proj.weight", [d, d]), (p + "attn.proj.bias", [d]),
               (p + "norm2.weight", [d]), (p + "norm2.bias", [d]),
               (p + "mlp.fc1.weight", [m, d]), (p + "mlp.fc1.bias", [m]),
               (p + "mlp.fc2.weight", [d, m]), (p + "mlp.fc2.bias", [d]),
               ("norm.weight", [d]), ("norm.bias", [d]), ("head.weight", [k, d]), ("head.bias", [k])]
    tensors = []
    for i, (name, shape) in enumerate(shapes):
        count = 1
        for s in shape:
            count *= s
        tensors.append((name, shape, [((i * 7 + j) % 11 - 5) / 50 for j in range(count)]))
    config = {"image_size": 8, "channels": 1, "patch_size": 4, "dim": d, "depth": 1, "heads": 2,
              "mlp_dim": m, "num_classes": k, "pos_embed": "learned", "pool": "cls",
              "qkv_bias": True, "ln_eps": 1e-06}
    meta = {"format": "vitcpp", "version": "0.1.0", "config": json.dumps(config),
            "class_names": json.dumps(["a", "b", "c"]),
            "normalize": json.dumps({"mean": [0.13], "std": [0.31]})}
    return safetensors(tensors, meta), config, meta


def image_bytes(mode, fmt, **options):
    img = Image.new(mode, (8, 6))
    for y in range(6):
        for x in range(8):
            v = (x * 30 + y * 10) % 256
            rgb = (v, 255 - v, (v * 3) % 256)
            img.putpixel((x, y), v if mode == "L" else rgb + ((x * 40) % 256,) * (mode == "RGBA"))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def main(out):
    files = {}
    pixels = bytes((i * 37) % 256 for i in range(3 * 4 * 4))
    images = idx(0x08, [3, 4, 4], pixels)
    labels = idx(0x08, [3], bytes([2, 0, 1]))
    files["idx/raw"] = idx_pair(images, labels)
    gz_images = gzip.compress(images, mtime=0)
    gz_images += b"\0" * ((4 - len(gz_images) % 4) % 4)
    files["idx/gzip"] = idx_pair(gz_images, gzip.compress(labels, mtime=0))
    files["idx/float_type"] = idx_pair(idx(0x0D, [1, 1, 1], b"\0\0\0\0"), labels)

    ckpt, config, meta = tiny_checkpoint()
    files["safetensors/tiny_checkpoint"] = ckpt
    files["safetensors/f16_tensor"] = (lambda h: struct.pack("<Q", len(h)) + h + b"\0<\0\xc0")(
        json.dumps({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}).encode())

    files["image/gray.png"] = image_bytes("L", "PNG")
    files["image/rgb.png"] = image_bytes("RGB", "PNG")
    files["image/rgb.jpg"] = image_bytes("RGB", "JPEG")
    files["image/rgb.bmp"] = image_bytes("RGB", "BMP")
    files["image/gray.pgm"] = image_bytes("L", "PPM")
    files["image/rgb.ppm"] = image_bytes("RGB", "PPM")
    files["image/rgb.webp"] = image_bytes("RGB", "WEBP")
    files["image/rgba-lossless.webp"] = image_bytes("RGBA", "WEBP", lossless=True)

    files["metadata/valid"] = "\0".join(
        [meta["config"], meta["class_names"], meta["normalize"]]).encode()
    files["metadata/recipe"] = json.dumps(
        {"epochs": 2, "batch_size": 4, "optimizer": "adamw", "lr": 0.001, "min_lr": 0.0,
         "warmup_epochs": 0, "cosine": True, "weight_decay": 0.05, "beta1": 0.9, "beta2": 0.999,
         "label_smoothing": 0.1, "clip_grad": 1.0, "seed": 0, "qkv_init_std": 0.02,
         "pos_init": "normal", "crop_padding": 0, "hflip": False, "erase_prob": 0.0}).encode()

    for name, data in files.items():
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    print("wrote %d seed inputs under %s" % (len(files), out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus")
