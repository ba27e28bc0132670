"""The frozen layers' output (`models/frozen.py`), computed once per distinct input and kept on disk.

A store is a folder `.cache/frozen/<base>-<rows>/`: `states.bin` holds one (tokens, H) block per distinct token
sequence of the run's rows (training, validation and test together; no padding stored), `ids.npy` and
`lengths.npy` those sequences, and `store.json`, written last, the base digest and sizes. The base digest
covers what the states are a function of: the frozen weights (`frozen_digest`: backbone file, TAPT, trimmed
vocabulary, K), the tokenizer, the stored dtype and the compute precision. A row is looked up by its token ids
in a store of the same base, so changed text is computed anew and a changed model, tokenizer or K never reads
another's states; any store of the base that holds every row a run needs serves it. The folder is filled under
a temporary name and renamed when complete, and a store whose `store.json` or sizes disagree is never read: a
killed run leaves nothing a later run trusts.

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

from ..core.device import autocast, resolve_precision
from ..core.errors import PipelineError
from ..core.io_utils import atomic_dir, read_json, write_json
from ..data.features import FROZEN_ROW
from ..models.frozen import frozen_digest, lower_states

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


def _keys(datasets) -> list[list[bytes]]:
    """Each dataset's rows as keys: their token ids as int32 bytes."""
    return [[np.asarray(ids, dtype=np.int32).tobytes() for ids in ds["input_ids"]] for ds in datasets]


def _open(folder: Path, base: str) -> tuple[FrozenStore, dict[bytes, int]] | None:
    """The store in `folder` and its row of each key, if the store is complete and made by the frozen part `base`
    digests; None otherwise (missing, unfinished, damaged or another model's)."""
    try:
        meta = read_json(folder / "store.json")
        lengths = np.load(folder / "lengths.npy", allow_pickle=False)
        ids = np.load(folder / "ids.npy", allow_pickle=False)
        size = (folder / "states.bin").stat().st_size
    except (OSError, ValueError, PipelineError):
        return None
    dtype = STORED.get(meta.get("dtype"))
    if meta.get("base") != base or dtype is None or len(lengths) != meta.get("rows") or len(ids) != lengths.sum():
        return None
    if size != int(lengths.sum()) * meta["hidden"] * np.dtype(dtype).itemsize:
        return None
    ends = np.cumsum(lengths)
    rows = {ids[end - n : end].tobytes(): row for row, (n, end) in enumerate(zip(lengths, ends))}
    return FrozenStore(folder, lengths, meta["hidden"], dtype), rows


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
    np.save(folder / "ids.npy", np.frombuffer(b"".join(keys), dtype=np.int32), allow_pickle=False)


def frozen_store(
    encoder, k: int, tokenizer, datasets, stored: str, precision: str, cache: Path, batch_size: int = 64, log=print
):
    """The store of `encoder`'s bottom `k` layers over the rows of `datasets`, and the datasets with the
    `frozen_row` column that indexes it. Any complete store of the same frozen part, tokenizer, dtype and
    precision that holds every row serves (a screen reads its full run's store); else one is built."""
    if stored not in STORED:
        raise PipelineError(f"frozen cache dtype {stored!r}: one of {list(STORED)}")
    precision = resolve_precision(precision)
    keys = _keys(datasets)
    needed = set().union(*map(set, keys))
    base = hashlib.sha256(
        json.dumps([frozen_digest(encoder, k), tokenizer_digest(tokenizer), stored, precision]).encode()
    ).hexdigest()
    for folder in sorted((cache / "frozen").glob(f"{base[:16]}-*")):
        found = _open(folder, base)
        if found is not None and needed <= found[1].keys():
            log(f"frozen layers: reusing {folder} ({len(needed):,} of its {len(found[1]):,} rows)")
            return _indexed(*found, datasets, keys)
    ordered = sorted(needed, key=lambda key: (len(key), key))  # shortest first: batches of similar length
    rows = hashlib.sha256(b"".join(len(key).to_bytes(4, "little") + key for key in ordered)).hexdigest()
    folder = cache / "frozen" / f"{base[:16]}-{rows[:16]}"
    shutil.rmtree(folder, ignore_errors=True)  # incomplete or damaged: never read
    tokens = sum(len(key) // 4 for key in ordered)
    log(f"frozen layers: computing the bottom {k} layers once for {len(ordered):,} distinct rows ({tokens:,} tokens)")
    training = encoder.training
    with atomic_dir(folder) as tmp:
        _write(tmp, encoder, k, ordered, STORED[stored], precision, batch_size, log)
        meta = {"base": base, "rows": len(ordered), "hidden": encoder.config.hidden_size, "dtype": stored}
        write_json(tmp / "store.json", meta)  # last: the store is complete
    encoder.train(training)
    found = _open(folder, base)
    if found is None:
        raise PipelineError(f"the frozen-layer store {folder} did not verify after writing it")
    return _indexed(*found, datasets, keys)


def _indexed(store: FrozenStore, rows: dict[bytes, int], datasets, keys: list[list[bytes]]):
    return store, [ds.add_column(FROZEN_ROW, [rows[key] for key in column]) for ds, column in zip(datasets, keys)]
