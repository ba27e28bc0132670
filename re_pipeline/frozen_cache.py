"""The frozen layers' output (`models/frozen.py`), computed once per distinct input and kept on disk.

A store is a folder `.cache/frozen/<digest>/`: `states.bin` holds one (tokens, H) block per distinct token
sequence of the run's rows (training, validation and test together; no padding stored), `lengths.npy` their
token counts, and `store.json`, written last, the full digest and sizes. The digest covers the frozen weights
(`frozen_digest`: backbone file, TAPT, trimmed vocabulary, K), the tokenizer, the stored dtype, the compute
precision and every row's token ids, so a change to any of them makes another store, never a stale one.
The folder is filled under a temporary name and renamed when complete, and a store whose `store.json` or
sizes disagree is rebuilt: a killed run leaves nothing a later run trusts.

Batches read their rows with `os.pread` into a fresh array: the store does not count towards the process's
resident memory the way a memory map's touched pages would (the page cache keeps it fast).

Every row is a fixed function of its tokens only while its tokens are fixed: augmentation here happens once
per fold, before featurizing, so augmented rows are stored like any other; `model.entity_dropout`, which
changes tokens every step, is refused with a cache (`ModelConfig`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.features import FROZEN_ROW
from .device import autocast, resolve_precision
from .errors import PipelineError
from .io_utils import atomic_dir, read_json, write_json
from .models.frozen import frozen_digest, lower_states

STORED = {"float16": np.float16, "float32": np.float32}


@dataclass
class FrozenStore:
    """A complete store, read by row index: `states(rows, width)` -> (B, width, H), zero-padded."""

    folder: Path
    lengths: np.ndarray  # (N,) tokens per stored row
    hidden: int
    dtype: np.dtype

    def __post_init__(self) -> None:
        self.row_bytes = self.hidden * np.dtype(self.dtype).itemsize  # one token's state
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths.astype(np.int64))[:-1]]) * self.row_bytes
        self.fd = os.open(self.folder / "states.bin", os.O_RDONLY)

    def __del__(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)

    def __getstate__(self) -> dict:  # a DataLoader worker reopens the file
        return {k: v for k, v in self.__dict__.items() if k in ("folder", "lengths", "hidden", "dtype")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def states(self, rows: list[int], width: int) -> torch.Tensor:
        out = np.zeros((len(rows), width, self.hidden), dtype=self.dtype)
        for i, row in enumerate(rows):
            n = int(self.lengths[row])
            data = os.pread(self.fd, n * self.row_bytes, int(self.offsets[row]))
            out[i, :n] = np.frombuffer(data, dtype=self.dtype).reshape(n, self.hidden)
        return torch.from_numpy(out)


def tokenizer_digest(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def _rows(datasets) -> tuple[list[bytes], list[list[int]]]:
    """The distinct token sequences of `datasets` in store order (shortest first, then by content), as keys
    (int32 bytes), and for each dataset its rows' indices in that order."""
    columns = [ds["input_ids"] for ds in datasets]
    keys = {np.asarray(ids, dtype=np.int32).tobytes() for column in columns for ids in column}
    ordered = sorted(keys, key=lambda k: (len(k), k))
    index = {key: i for i, key in enumerate(ordered)}
    return ordered, [[index[np.asarray(ids, dtype=np.int32).tobytes()] for ids in column] for column in columns]


def _open(folder: Path, digest: str) -> FrozenStore | None:
    """The store in `folder` if it is complete and its digest is `digest`; None otherwise."""
    try:
        meta = read_json(folder / "store.json")
        lengths = np.load(folder / "lengths.npy", allow_pickle=False)
        size = (folder / "states.bin").stat().st_size
    except (OSError, ValueError, PipelineError):
        return None
    dtype = STORED.get(meta.get("dtype"))
    if meta.get("digest") != digest or dtype is None or len(lengths) != meta.get("rows"):
        return None
    if size != int(lengths.sum()) * meta["hidden"] * np.dtype(dtype).itemsize:
        return None
    return FrozenStore(folder, lengths, meta["hidden"], dtype)


def _write(folder: Path, encoder, k: int, keys: list[bytes], dtype, precision: str, batch_size: int, log) -> None:
    """Compute the frozen part over every distinct row (batches of similar length) into `folder`."""
    encoder.eval()
    lengths = np.array([len(key) // 4 for key in keys], dtype=np.int32)
    report = max(1, len(keys) // batch_size // 10)
    with open(folder / "states.bin", "wb") as fh, autocast(precision):
        for b, start in enumerate(range(0, len(keys), batch_size)):
            chunk = keys[start : start + batch_size]
            width = int(lengths[start + len(chunk) - 1])  # shortest first: the last row is the longest
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for i, key in enumerate(chunk):
                row = torch.from_numpy(np.frombuffer(key, dtype=np.int32).astype(np.int64))
                ids[i, : len(row)], mask[i, : len(row)] = row, 1
            states = lower_states(encoder, k, ids, mask).float().numpy()  # (B, T, H)
            for i in range(len(chunk)):
                block = states[i, : lengths[start + i]].astype(dtype)
                if not np.isfinite(block).all():
                    raise PipelineError(
                        f"the frozen layers' output overflows {np.dtype(dtype).name}: set "
                        "model.backbone.frozen_cache: float32"
                    )
                fh.write(block.tobytes())
            if (b + 1) % report == 0:
                log(f"frozen layers: {min(start + batch_size, len(keys)):,}/{len(keys):,} rows")
    np.save(folder / "lengths.npy", lengths, allow_pickle=False)


def frozen_store(
    encoder, k: int, tokenizer, datasets, stored: str, precision: str, cache: Path, batch_size: int = 64, log=print
):
    """The store of `encoder`'s bottom `k` layers over the rows of `datasets` (built, or reused when a complete
    one with the same digest exists), and the datasets with the `frozen_row` column that indexes it."""
    if stored not in STORED:
        raise PipelineError(f"frozen cache dtype {stored!r}: one of {list(STORED)}")
    precision = resolve_precision(precision)
    keys, indices = _rows(datasets)
    digest = hashlib.sha256(
        json.dumps([frozen_digest(encoder, k), tokenizer_digest(tokenizer), stored, precision]).encode()
    )
    for key in keys:
        digest.update(len(key).to_bytes(4, "little") + key)
    digest = digest.hexdigest()
    folder = cache / "frozen" / digest[:16]
    store = _open(folder, digest)
    if store is not None:
        log(f"frozen layers: reusing {folder} ({len(keys):,} distinct rows)")
    else:
        shutil.rmtree(folder, ignore_errors=True)  # incomplete or foreign: never read
        tokens = sum(len(key) // 4 for key in keys)
        log(f"frozen layers: computing the bottom {k} layers once for {len(keys):,} distinct rows ({tokens:,} tokens)")
        training = encoder.training
        with atomic_dir(folder) as tmp:
            _write(tmp, encoder, k, keys, STORED[stored], precision, batch_size, log)
            meta = {"digest": digest, "rows": len(keys), "hidden": encoder.config.hidden_size, "dtype": stored}
            write_json(tmp / "store.json", meta)  # last: the store is complete
        encoder.train(training)
        store = _open(folder, digest)
        if store is None:
            raise PipelineError(f"the frozen-layer store {folder} did not verify after writing it")
    return store, [ds.add_column(FROZEN_ROW, rows) for ds, rows in zip(datasets, indices)]
