#!/usr/bin/env python3
"""Prints, for every layer of a saved model that stores feedback weights B, the norms of W, B
and W − B and the B–W angle: where the angle comes from. Kolen-Pollack's W − B contracts
only by the weight decay the two share, but the decay shrinks W as well, so the angle is
set by ‖W − B‖ against ‖W‖.

usage: scripts/feedback_gap.py RUN_DIR/model.bpk [--kaiming-fan-out]
  --kaiming-fan-out: also each norm against its expectation at a fan-out Kaiming-normal
  init (the zoo's default for ResNet convolutions, W and B drawn alike and independently:
  E‖W0‖² = 2·C_in for a C_out × C_in × k × k kernel, E‖W0 − B0‖² = 4·C_in).

Reads Burn's burnpack format (a 10-byte header: magic "NRUB", u16 version, u32 metadata
size; CBOR metadata naming each tensor's dtype, shape and byte range; the data section
from the next 256-byte boundary). Standard library only.
"""
import argparse
import array
import math
import struct
import sys


def cbor(b, i):
    """One CBOR item of `b` at offset `i`: (value, next offset)."""
    head = b[i]
    major, info = head >> 5, head & 31
    i += 1
    if major == 7 and info in (26, 27):
        fmt, n = (">f", 4) if info == 26 else (">d", 8)
        return struct.unpack(fmt, b[i:i + n])[0], i + n
    if info < 24:
        v = info
    elif info in (24, 25, 26, 27):
        n = 1 << (info - 24)
        v = int.from_bytes(b[i:i + n], "big")
        i += n
    else:
        raise ValueError(f"CBOR item at offset {i - 1}: indefinite lengths are not supported")
    if major == 0:
        return v, i
    if major == 1:
        return -1 - v, i
    if major in (2, 3):
        raw = bytes(b[i:i + v])
        return (raw if major == 2 else raw.decode()), i + v
    if major == 4:
        out = []
        for _ in range(v):
            x, i = cbor(b, i)
            out.append(x)
        return out, i
    if major == 5:
        out = {}
        for _ in range(v):
            k, i = cbor(b, i)
            out[k], i = cbor(b, i)
        return out, i
    if major == 6:  # a tag: its item follows
        return cbor(b, i)
    return {20: False, 21: True, 22: None}.get(v, v), i


def load(path):
    """{name: (shape, array of f32)} of the file's f32 tensors."""
    b = open(path, "rb").read()
    if len(b) < 10 or b[:4] != struct.pack("<I", 0x4255524E):
        sys.exit(f"{path}: not a burnpack file (expected the magic bytes NRUB at offset 0)")
    (size,) = struct.unpack("<I", b[6:10])
    meta, _ = cbor(b, 10)
    start = -(-(10 + size) // 256) * 256
    out = {}
    for name, d in meta["tensors"].items():
        if "F32" not in str(d["dtype"]):
            continue
        s, e = d["data_offsets"]
        a = array.array("f")
        a.frombytes(b[start + s:start + e])
        if sys.byteorder != "little":
            a.byteswap()
        out[name] = (d["shape"], a)
    return out


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a model.bpk of a run folder")
    p.add_argument("--kaiming-fan-out", action="store_true",
                   help="also the norms against a fan-out Kaiming-normal init's expectation")
    args = p.parse_args(argv)
    tensors = load(args.model)
    pairs = [(n[: -len("weight")], n) for n in tensors
             if n.endswith(".weight") and n[: -len("weight")] + "feedback" in tensors]
    if not pairs:
        sys.exit(f"{args.model}: no layer stores feedback weights (tensors named *.feedback)")
    head = f"{'layer':44s} {'|W|':>8s} {'|B|':>8s} {'|W-B|':>8s} {'angle':>6s}"
    if args.kaiming_fan_out:
        head += f" {'|W|/E|W0|':>10s} {'|W-B|/E|W0-B0|':>15s}"
    print(head)
    for prefix, name in pairs:
        shape, w = tensors[name]
        fshape, b = tensors[prefix + "feedback"]
        if fshape != shape:
            continue  # DFA's direct matrix: another shape, no angle with W
        ww = math.fsum(x * x for x in w)
        bb = math.fsum(x * x for x in b)
        wb = math.fsum(x * y for x, y in zip(w, b))
        gap = math.sqrt(max(ww + bb - 2 * wb, 0.0))
        angle = math.degrees(math.acos(max(-1.0, min(1.0, wb / math.sqrt(ww * bb)))))
        line = f"{prefix.rstrip('.'):44s} {math.sqrt(ww):8.3f} {math.sqrt(bb):8.3f} {gap:8.3f} {angle:6.1f}"
        if args.kaiming_fan_out:
            if len(shape) == 4:
                c_in = shape[1]
                line += f" {math.sqrt(ww / (2 * c_in)):10.3f} {gap / (2 * math.sqrt(c_in)):15.3f}"
            else:
                line += f" {'–':>10s} {'–':>15s}"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
