#!/usr/bin/python3
"""Rewrites a safetensors file with its F32 tensors as F16 (half the size), keeping the metadata:
how tests/fixtures/demo_tiny28.f16.safetensors is made from `make demo`'s last.safetensors, so
that the trained model fits the repository's 1 MB limit on fixtures (vitcpp reads F16 into fp32).

    /usr/bin/python3 tests/reference/to_f16.py IN.safetensors OUT.safetensors
"""
import json
import struct
import sys

import numpy as np


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out_header, chunks, offset = {}, [], 0
    for name, entry in header.items():
        if name == "__metadata__":
            out_header[name] = entry
            continue
        begin, end = entry["data_offsets"]
        raw = body[begin:end]
        dtype = entry["dtype"]
        if dtype == "F32":
            raw = np.frombuffer(raw, dtype="<f4").astype("<f2").tobytes()
            dtype = "F16"
        out_header[name] = {"dtype": dtype, "shape": entry["shape"],
                            "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(out_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


if __name__ == "__main__":
    main()
