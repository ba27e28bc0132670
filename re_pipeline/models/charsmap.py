"""A SentencePiece "precompiled charsmap" from a codepoint map, for `tokenizers.normalizers.Precompiled`.

`tokenizers` applies a normalization table only in this compiled form (SentencePiece's: a u32 size,
a darts-clone double-array trie over the UTF-8 keys, then the NUL-terminated replacements); nothing
installed builds one from a plain map, so this small builder is ours. Unit layout (darts-clone):
offset to the children's base << 10 | has-leaf << 8 | label; a leaf unit is value | 1 << 31.
"""

from __future__ import annotations

import struct

import numpy as np


def _trie(keys: list[tuple[bytes, int]]) -> dict:
    root: dict = {}
    for key, value in keys:
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value
    return root


def double_array(keys: list[tuple[bytes, int]]) -> np.ndarray:
    """darts-clone units for `keys` (distinct byte strings without NUL, each with a value < 2**31)."""
    size = 1 << 12
    units, used, bases = np.zeros(size, np.uint32), np.zeros(size, bool), set()
    used[0] = True
    first_free = 1
    todo = [(_trie(keys), 0)]
    while todo:
        node, pos = todo.pop()
        labels = sorted(c for c in node if c is not None)
        slots = ([0] if None in node else []) + labels
        free = first_free
        while True:  # the first base whose slots are all free (each base serves one node)
            while free < len(used) and used[free]:
                free += 1
            base = free ^ slots[0]
            if (base | 255) >= len(used):
                grow = len(used)
                units, used = (
                    np.concatenate([units, np.zeros(grow, np.uint32)]),
                    np.concatenate([used, np.zeros(grow, bool)]),
                )
            if base not in bases and not any(used[base ^ c] for c in slots):
                break
            free += 1
        bases.add(base)
        for c in slots:
            used[base ^ c] = True
        offset = pos ^ base
        assert offset < 1 << 21, "trie too large for plain offsets"
        units[pos] |= (offset << 10) | ((1 << 8) if None in node else 0)
        if None in node:
            units[base] = (node[None] & 0x7FFFFFFF) | (1 << 31)
        for c in labels:
            units[base ^ c] |= c
            todo.append((node[c], base ^ c))
        while first_free < len(used) and used[first_free]:
            first_free += 1
    return units[: (max(bases) | 255) + 1]  # every base ^ label (any byte) stays inside the array


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """The compiled form of `mapping` (codepoint -> replacement, possibly empty)."""
    blob, keys = bytearray(), []
    for cp in sorted(mapping):
        keys.append((chr(cp).encode("utf-8", "surrogatepass"), len(blob)))
        blob += mapping[cp].encode("utf-8") + b"\0"
    trie = double_array(sorted(keys)).astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)
