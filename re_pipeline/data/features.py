"""Tokenization: examples → model inputs with the entities' token positions.

Entity character spans from `markers.mark` are mapped to tokens through the fast tokenizer's
`offset_mapping` (a token belongs to a span when their character ranges overlap), never by
counting tokens, so added tokens, Metaspace "▁" pieces and whitespace cannot shift positions.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import asdict
from functools import partial
from operator import itemgetter

import datasets
import numpy as np
import torch

from ..errors import PipelineError
from ..labels import LabelSet
from .markers import MarkerConfig, added_tokens, mark
from .morphemes import space_examples
from .schema import Example

PAD = "pad"  # padded with the tokenizer's pad id
# The model's inputs and how a batch pads them: a fill value per token for sequences, None for one value
# per row. A new model input is a column made in `_tokenize` plus one entry here.
MODEL_INPUTS: dict[str, int | str | None] = {
    "input_ids": PAD,
    "attention_mask": 0,
    "entity_mask": 0,
    "subj_start": None,
    "obj_start": None,
    "pair": None,
    "labels": None,
}
# The columns `build_features` returns: the model inputs it makes, the entity ends, and what the type-pair
# vocabulary and bookkeeping read (`pair` is added later, by `add_pair_column`).
COLUMNS = (
    "input_ids",
    "attention_mask",
    "labels",
    "subj_start",
    "subj_end",
    "obj_start",
    "obj_end",
    "entity_mask",
    "subject_type",
    "object_type",
    "id",
)
_MADE = ("input_ids", "attention_mask", "subj_start", "subj_end", "obj_start", "obj_end", "entity_mask")


def prepare_tokenizer(tokenizer, config: MarkerConfig, entity_types: Iterable[str]) -> int:
    """Add the special tokens `config.format` needs; returns how many were new.

    Callers must then resize the model's embeddings to `len(tokenizer)` (`tokenizer.vocab_size`
    does not count added tokens). The tokens are added with lstrip/rstrip off, so they never
    absorb the spaces around them.
    """
    tokens = added_tokens(config, entity_types)
    if not tokens:
        return 0
    return tokenizer.add_special_tokens({"extra_special_tokens": tokens}, replace_extra_special_tokens=False)


def _tokens(offsets: list, lo: int, hi: int, start: int, end: int, example_id: str) -> tuple[int, int]:
    """First and last token in [lo, hi) whose characters overlap [start, end) (offsets are sorted).

    A first token that starts where the next one does is a bare Metaspace "▁" (one the
    pre-tokenizer prepends at the start of the text or after an added token): it is skipped.
    """
    first = bisect_right(offsets, start, lo, hi, key=itemgetter(1))
    last = bisect_left(offsets, end, lo, hi, key=itemgetter(0)) - 1
    if first > last:
        raise PipelineError(f"example {example_id}: characters {start}-{end} map to no token")
    return first + (first < last and offsets[first][0] == offsets[first + 1][0]), last


def _tokenize(batch: dict, tokenizer, max_length: int) -> dict:
    """Tokenize a batch of marked rows (`text`, `first`, `spans`: the `Marked` spans as mappings)."""
    pair = batch["first"][0] is not None
    texts = (batch["first"], batch["text"]) if pair else (batch["text"],)
    enc = tokenizer(*texts, return_offsets_mapping=True, return_token_type_ids=False, return_attention_mask=False)
    out: dict[str, list] = {k: [] for k in (*_MADE, "truncated", "n_tokens")}
    for i, (ids, offsets, spans, example_id) in enumerate(
        zip(enc["input_ids"], enc["offset_mapping"], batch["spans"], batch["id"])
    ):
        seq = enc.sequence_ids(i)
        lo = seq.index(int(pair))  # the marked sentence's tokens are [lo, hi)
        hi = lo + seq.count(int(pair))
        token = partial(_tokens, offsets, lo, hi, example_id=example_id)
        s, o = spans["subject"], spans["object"]
        (s_first, s_last), (o_first, o_last) = token(s["start"], s["end"]), token(o["start"], o["end"])
        s_start, o_start = token(s["marker_start"], s["end"])[0], token(o["marker_start"], o["end"])[0]
        keep_lo = min(s_start, o_start)
        keep_hi = max(token(s["start"], s["marker_end"])[1], token(o["start"], o["marker_end"])[1]) + 1
        shift = 0
        if len(ids) > max_length:  # keep a window of the sentence that holds both marked entities
            budget = max_length - (len(ids) - (hi - lo))
            if budget < keep_hi - keep_lo:
                raise PipelineError(
                    f"example {example_id}: its marked entities span {keep_hi - keep_lo} tokens, which does not "
                    f"fit max_length {max_length} with {len(ids) - (hi - lo)} other tokens; raise max_length"
                )
            start = min(max(lo, keep_lo - (budget - (keep_hi - keep_lo)) // 2), hi - budget)
            ids, shift = ids[:lo] + ids[start : start + budget] + ids[hi:], start - lo
        entity_mask = [0] * len(ids)
        entity_mask[o_first - shift : o_last - shift + 1] = [2] * (o_last - o_first + 1)
        entity_mask[s_first - shift : s_last - shift + 1] = [1] * (s_last - s_first + 1)  # wins a shared token
        row = {
            "input_ids": ids,
            "attention_mask": [1] * len(ids),
            "subj_start": s_start - shift,
            "subj_end": s_last - shift,
            "obj_start": o_start - shift,
            "obj_end": o_last - shift,
            "entity_mask": entity_mask,
            "truncated": len(ids) < len(offsets),
            "n_tokens": len(offsets),
        }
        for key, value in row.items():
            out[key].append(value)
    return out


def token_lengths(dataset) -> list[int]:
    """Tokens per row, read from the Arrow column (no per-row formatting)."""
    return [len(ids) for ids in dataset.data.column("input_ids").to_pylist()]


def build_features(
    examples: list[Example],
    tokenizer,
    markers: MarkerConfig,
    label_set: LabelSet | None,
    max_length: int,
    num_proc: int = 1,
) -> tuple[datasets.Dataset, dict]:
    """Tokenize `examples` (a fast tokenizer, after `prepare_tokenizer`) into a `datasets.Dataset`.

    Columns: see COLUMNS. `labels` is -100 for unlabelled examples (or with no `label_set`);
    `subj_start`/`obj_start` is the first token of the opening marker (of the word when the
    format has none), `subj_end`/`obj_end` the last token of the entity word; `entity_mask`
    is 1 on subject word tokens, 2 on object word tokens, 0 elsewhere (in `baseline`, where both
    words can fall in one token, as in "국제축구연맹(FIFA)이", the subject's 1 wins). Inputs longer than
    `max_length` keep a window of the sentence around both marked entities (centered when
    possible). Returns the dataset and stats: `examples`, `truncated_window` (how many were
    windowed), `max_tokens` (longest input before windowing).
    """
    if not examples:
        raise PipelineError("no examples to tokenize")
    types = {e.type for ex in examples for e in (ex.subject, ex.object)}
    vocab = tokenizer.get_vocab()
    missing = [t for t in added_tokens(markers, types) if t not in vocab]
    if missing:
        raise PipelineError(f"the tokenizer lacks marker tokens {missing}; call prepare_tokenizer first")
    rows = []
    for ex in space_examples(examples) if markers.morphemes else examples:
        m = mark(ex, markers, tokenizer.sep_token)
        rows.append(
            {
                "id": ex.id,
                "text": m.text,
                "first": m.first,
                "spans": {"subject": asdict(m.subject), "object": asdict(m.object)},
                "labels": label_set.id(ex.label) if label_set is not None and ex.label is not None else -100,
                "subject_type": ex.subject.type,
                "object_type": ex.object.type,
            }
        )
    ds = datasets.Dataset.from_list(rows).map(
        partial(_tokenize, tokenizer=tokenizer, max_length=max_length),
        batched=True,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=["text", "first", "spans"],
    )
    truncated, n_tokens = (ds.data.column(name).to_pylist() for name in ("truncated", "n_tokens"))  # no row formatting
    stats = {"examples": len(ds), "truncated_window": sum(truncated), "max_tokens": max(n_tokens)}
    return ds.select_columns(list(COLUMNS)), stats


def length_order(dataset) -> np.ndarray:
    """Row indices shortest first: batches of similar length waste little padding at inference."""
    return np.argsort(token_lengths(dataset), kind="stable")


def add_pair_column(dataset, pair_names: list[str]):
    """The `pair` input: each row's index in `pair_names` ("SUBJ|OBJ" type pairs), -1 for a pair not in it."""
    index = {n: i for i, n in enumerate(pair_names)}
    return dataset.map(
        lambda b: {"pair": [index.get(f"{s}|{o}", -1) for s, o in zip(b["subject_type"], b["object_type"])]},
        batched=True,
        desc="type pairs",
    )


class RelationCollator:
    """Pads a batch of feature rows into tensors (`MODEL_INPUTS`): sequences to the batch's longest row rounded
    up to `multiple_of`, or to a fixed `pad_to` (as the official baseline did); row values stacked.

    Returns (B, T) tensors for sequences and (B,) tensors for row values; inputs a row lacks are left out.
    """

    def __init__(self, pad_id: int, pad_to: int | None = None, multiple_of: int = 8):
        self.pad_id = pad_id
        self.pad_to = pad_to
        self.multiple_of = multiple_of

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        width = self.pad_to or -(-longest // self.multiple_of) * self.multiple_of
        batch = {}
        for key, fill in MODEL_INPUTS.items():
            if key not in rows[0]:
                continue
            if fill is None:
                batch[key] = torch.tensor([r[key] for r in rows])
            else:
                fill = self.pad_id if fill == PAD else fill
                batch[key] = torch.tensor([list(r[key]) + [fill] * (width - len(r[key])) for r in rows])
        return batch
