"""Build the validation splits on train.csv only and print their statistics.

usage: python splits.py            -> writes cache/splits.npz, prints a markdown table
Schemes
  random   stratified random 20% hold-out (seed 42)
  sentence GroupShuffleSplit by sentence, 20% (seed 42)
  entity   words (subject+object words, one namespace) are shuffled (seed 42) and the shortest
           prefix H is held out such that >=18% of rows contain a word of H; validation = rows
           whose subject OR object word is in H; training = rows with no word of H whose
           sentence does not occur in validation; the rest is left out.
  entity2  strict variant: validation = rows whose subject AND object words are both in H,
           training = rows with no word of H (sentence not in validation); rows with exactly
           one held-out word are left out. H grown until >=15% of rows are in validation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import CACHE, ipf_weights, load_both, md_table
from sklearn.model_selection import GroupShuffleSplit, train_test_split


def entity_split(df: pd.DataFrame, strict: bool, target: float, seed: int = 42):
    words = np.array(sorted(set(df.s_word) | set(df.o_word)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(words))
    rank = pd.Series(np.empty(len(words), dtype=int), index=words)
    rank.iloc[order] = np.arange(len(words))
    rs, ro = rank.reindex(df.s_word).values, rank.reindex(df.o_word).values
    # row enters validation once k > max(rank) (strict) or k > min(rank) (any)
    key = np.maximum(rs, ro) if strict else np.minimum(rs, ro)
    k = int(np.sort(key)[int(np.ceil(target * len(df))) - 1]) + 1  # smallest k reaching the target
    held_s, held_o = rs < k, ro < k
    val = (held_s & held_o) if strict else (held_s | held_o)
    clean = ~(held_s | held_o)
    val_sent = set(df.sentence[val])
    train = clean & ~df.sentence.isin(val_sent).values
    return np.flatnonzero(train), np.flatnonzero(val), k / len(words)


def build(tr: pd.DataFrame) -> dict:
    idx = np.arange(len(tr))
    out = {}
    a, b = train_test_split(idx, test_size=0.2, stratify=tr.y, random_state=42)
    out["random"] = (np.sort(a), np.sort(b))
    a, b = next(GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=42).split(idx, groups=tr.sentence))
    out["sentence"] = (np.sort(a), np.sort(b))
    a, b, f = entity_split(tr, strict=False, target=0.18)
    out["entity"] = (a, b)
    out["entity_frac"] = f
    a, b, f = entity_split(tr, strict=True, target=0.15)
    out["entity2"] = (a, b)
    out["entity2_frac"] = f
    return out


def row(T: pd.DataFrame, V: pd.DataFrame, left_out: int, w: np.ndarray | None = None) -> dict:
    """Statistics of validating on V after training on T; `w`: V's weights toward the test (None: V is the
    unlabelled test itself, whose label and weight rows are NaN)."""
    pairs = set(zip(T.s_word, T.o_word))
    tw = set(T.s_word) | set(T.o_word)
    nan = float("nan")
    return {
        "train": len(T),
        "val": len(V),
        "left_out": left_out,
        "val_pair_in_train%": 100 * np.mean([p in pairs for p in zip(V.s_word, V.o_word)]),
        "val_subj_seen_as_subj%": 100 * V.s_word.isin(set(T.s_word)).mean(),
        "val_obj_seen_as_obj%": 100 * V.o_word.isin(set(T.o_word)).mean(),
        "val_subj_seen_any%": 100 * V.s_word.isin(tw).mean(),
        "val_obj_seen_any%": 100 * V.o_word.isin(tw).mean(),
        "val_sentence_in_train%": 100 * V.sentence.isin(set(T.sentence)).mean(),
        "val_no_relation%": nan if w is None else 100 * (V.y == 0).mean(),
        "val_no_relation%_reweighted": nan if w is None else 100 * np.average(V.y == 0, weights=w),
        "val_POH%": 100 * (V.o_type == "POH").mean(),
        "val_wikitree%": 100 * (V.source == "wikitree").mean(),
        "weights_ESS": nan if w is None else w.sum() ** 2 / (w**2).sum(),
        "weights_max": nan if w is None else w.max(),
    }


def stats(tr, te, a, b) -> dict:
    V = tr.iloc[b]
    return row(tr.iloc[a], V, len(tr) - len(a) - len(b), ipf_weights(V, te))


if __name__ == "__main__":
    tr, te = load_both()
    sp = build(tr)
    CACHE.mkdir(exist_ok=True)
    np.savez(
        CACHE / "splits.npz",
        **{f"{k}_{p}": v[i] for k, v in sp.items() if isinstance(v, tuple) for i, p in enumerate(("train", "val"))},
    )
    print(f"entity: held-out word fraction {sp['entity_frac']:.3f}; entity2: {sp['entity2_frac']:.3f}")
    rows = {k: stats(tr, te, *v) for k, v in sp.items() if isinstance(v, tuple)}
    rows["(test vs all train)"] = row(tr, te, 0)
    table = pd.DataFrame(rows).T
    print(md_table(table.T))
