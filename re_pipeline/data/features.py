"""Tokenization: examples → model inputs with the entities' token positions.

Entity character spans from `markers.mark` are mapped to tokens through the fast tokenizer's
`offset_mapping` (a token belongs to a span when their character ranges overlap), never by
counting tokens, so added tokens, Metaspace "▁" pieces and whitespace cannot shift positions.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from functools import partial
from operator import itemgetter

import datasets
import numpy as np
import torch

from ..core.errors import PipelineError
from ..core.labels import LabelSet
from .markers import MarkerConfig, added_tokens, mark
from .morphemes import space_examples
from .schema import Example

PAD = "pad"  # padded with the tokenizer's pad id
FROZEN_ROW = "frozen_row"  # a row's index in a frozen-layer store (training/frozen_cache.py)
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


def _centred(lo: int, hi: int, keep_lo: int, keep_hi: int, size: int) -> int:
    """Start of `size` tokens within [lo, hi) centred on [keep_lo, keep_hi) (from keep_lo when that is longer)."""
    return min(max(lo, keep_lo - max(0, size - (keep_hi - keep_lo)) // 2), hi - size)


def _windows(lo: int, hi: int, first: tuple[int, int], second: tuple[int, int], budget: int) -> list[tuple[int, int]]:
    """Token ranges [a, b) of the sentence [lo, hi) to keep in `budget` tokens: one window around both marked
    entities (`first`, `second`: their [start, end) in sentence order) when they fit, else one window around each,
    `budget - 1` tokens together (a separator goes between), each entity cut to its start if it alone is too long."""
    (a0, a1), (b0, b1) = first, second
    if b1 - a0 <= budget:
        start = _centred(lo, hi, a0, b1, budget)
        return [(start, start + budget)]
    budget -= 1
    if (a1 - a0) + (b1 - b0) <= budget:
        extra = budget - (a1 - a0) - (b1 - b0)
        size_a = a1 - a0 + extra - extra // 2
    else:
        size_a = min(a1 - a0, max(budget // 2, budget - (b1 - b0)))
    size_b = budget - size_a
    start_a, start_b = _centred(lo, b0, a0, a1, size_a), _centred(a1, hi, b0, b1, size_b)
    return [(start_a, start_a + size_a), (start_b, start_b + size_b)]


def _moved(windows: list[tuple[int, int]], starts: list[int], position: int, anchor: int) -> int:
    """A token's position after windowing, kept inside the window that holds `anchor` (its entity's first token)."""
    k = max(k for k, (a, _) in enumerate(windows) if a <= anchor)
    a, b = windows[k]
    return starts[k] + min(max(position, a), b - 1) - a


def _tokenize(batch: dict, tokenizer, max_length: int) -> dict:
    """Tokenize a batch of marked rows (`text`, `first`, `spans`: the `Marked` spans as mappings)."""
    pair = batch["first"][0] is not None
    texts = (batch["first"], batch["text"]) if pair else (batch["text"],)
    enc = tokenizer(*texts, return_offsets_mapping=True, return_token_type_ids=False, return_attention_mask=False)
    out: dict[str, list] = {k: [] for k in (*_MADE, "truncated", "two_windows", "n_tokens")}
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
        keep = sorted(
            [
                (s_start, token(s["start"], s["marker_end"])[1] + 1),
                (o_start, token(o["start"], o["marker_end"])[1] + 1),
            ]
        )
        windows = [(lo, hi)]
        if len(ids) > max_length:  # keep windows of the sentence that hold the marked entities
            budget = max_length - (len(ids) - (hi - lo))
            if budget < 3:
                raise PipelineError(
                    f"example {example_id}: max_length {max_length} leaves {budget} tokens for the sentence "
                    "after the special tokens and the query; raise max_length"
                )
            windows = _windows(lo, hi, *keep, budget)
        kept, starts = [], []  # the windows' tokens joined by a separator, and where each window starts
        for a, b in windows:
            kept += [tokenizer.sep_token_id] if kept else []
            starts.append(lo + len(kept))
            kept += ids[a:b]
        ids = ids[:lo] + kept + ids[hi:]
        move = partial(_moved, windows, starts)
        entity_mask = [0] * len(ids)
        for code, first, last, start in ((2, o_first, o_last, o_start), (1, s_first, s_last, s_start)):
            a, b = move(first, start), move(last, start) + 1
            entity_mask[a:b] = [code] * (b - a)  # the subject, written last, wins a shared token
        row = {
            "input_ids": ids,
            "attention_mask": [1] * len(ids),
            "subj_start": move(s_start, s_start),
            "subj_end": move(s_last, s_start),
            "obj_start": move(o_start, o_start),
            "obj_end": move(o_last, o_start),
            "entity_mask": entity_mask,
            "truncated": len(ids) < len(offsets),
            "two_windows": len(windows) == 2,
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
    possible), or, when the entities are further apart, a window around each joined by the separator
    token. Returns the dataset and stats: `examples`, `truncated_window` (how many were windowed),
    `two_windows` (how many of those got a window per entity), `max_tokens` (longest input before windowing).
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
    truncated, two, n_tokens = (ds.data.column(c).to_pylist() for c in ("truncated", "two_windows", "n_tokens"))
    stats = {
        "examples": len(ds),
        "truncated_window": sum(truncated),
        "two_windows": sum(two),
        "max_tokens": max(n_tokens),
    }
    return ds.select_columns(list(COLUMNS)), stats


def length_order(dataset) -> np.ndarray:
    """Row indices shortest first: batches of similar length waste little padding at inference."""
    return np.argsort(token_lengths(dataset), kind="stable")


def window_note(stats: dict | None, what: str, max_length: int) -> str | None:
    """A log line counting the rows of `what` that got a window per entity (None when none did or no stats)."""
    if not stats or not stats["two_windows"]:
        return None
    return (
        f"{stats['two_windows']} row(s) of the {what}: entities further apart than max_length {max_length} tokens; "
        "the input is a window around each entity, joined by a separator"
    )


def shared_head_rows(dataset) -> dict[str, int]:
    """Rows per type pair ("SUBJ|OBJ") that `add_pair_column` found in no trained pair: the shared head answers them."""
    pairs, subjects, objects = (dataset.data.column(c).to_pylist() for c in ("pair", "subject_type", "object_type"))
    return dict(Counter(f"{s}|{o}" for p, s, o in zip(pairs, subjects, objects) if p < 0).most_common())


def shared_head_note(dataset, what: str) -> str | None:
    """A log line counting the rows of `what` whose type pair was never trained (None when none or no dataset)."""
    counts = shared_head_rows(dataset) if dataset is not None else {}
    if not counts:
        return None
    pairs = ", ".join(f"{pair} ({n})" for pair, n in list(counts.items())[:5])
    return (
        f"{sum(counts.values())} row(s) of the {what} have a type pair not seen in training ({pairs}): "
        "the shared head answers them"
    )


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

    Returns (B, T) tensors for sequences and (B,) tensors for row values; inputs a row lacks are left out. With
    a `frozen` store (`frozen_cache.FrozenStore`), rows carrying its `frozen_row` index also get their frozen
    layers' output as `frozen_states` (B, T, H).
    """

    def __init__(self, pad_id: int, pad_to: int | None = None, multiple_of: int = 8, frozen=None):
        self.pad_id = pad_id
        self.pad_to = pad_to
        self.multiple_of = multiple_of
        self.frozen = frozen

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
        if self.frozen is not None and FROZEN_ROW in rows[0]:
            batch["frozen_states"] = self.frozen.states([r[FROZEN_ROW] for r in rows], width)
        return batch
