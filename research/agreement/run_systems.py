"""Fit every cheap system on each validation scheme's training part and on all of train.

usage: python run_systems.py [REP ...]     (REP in: prior char14 char14m char13 word12 kiwi12 kiwi12m; default all)
Writes cache/preds/{system}__{split}.npy : probs (rows x 30) for the split's validation rows
(split in random, sentence, entity, entity2) or for the 7,765 test rows (split = full),
and appends one JSON line per fit to cache/fit_log.jsonl (wall seconds, iterations).
Features: one TfidfVectorizer per representation, fitted on the unlabeled texts of train + test
(no labels), cached in cache/X_{rep}.npz. Classifier: LogisticRegression(lbfgs, multinomial,
max_iter=300, tol=1e-4, float32 features); systems sharing a representation are fitted in a warm-start chain
(each C starts from the previous solution), which changes speed, not the optimum.
Single process, single thread (OMP/OPENBLAS threads = 1).
"""

from __future__ import annotations

import json
import os
import sys
import time

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "1")

import numpy as np
import scipy.sparse as sp
from common import CACHE, C, load_both, texts
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

SPLITS = ("random", "sentence", "entity", "entity2", "full")
PRED = CACHE / "preds"

# representation -> (vectorizer kwargs, text source)
REPS = {
    "char14": (dict(analyzer="char_wb", ngram_range=(1, 4)), "marked"),
    "char14m": (dict(analyzer="char_wb", ngram_range=(1, 4)), "masked"),
    "char13": (dict(analyzer="char_wb", ngram_range=(1, 3)), "marked"),
    "word12": (dict(analyzer="word", ngram_range=(1, 2), token_pattern=r"\S+", lowercase=False), "marked"),
    "kiwi12": (dict(analyzer="word", ngram_range=(1, 2), token_pattern=r"\S+", lowercase=False), "kiwi"),
    "kiwi12m": (dict(analyzer="word", ngram_range=(1, 2), token_pattern=r"\S+", lowercase=False), "kiwim"),
}
# representation -> warm-start chain of (system name, C, class_weight)
CHAINS = {
    "char14": [
        ("char14_C0.3", 0.3, None),
        ("char14_C1", 1.0, None),
        ("char14_C3", 3.0, None),
        ("char14_C10", 10.0, None),
        ("char14_C10_bal", 10.0, "balanced"),
    ],
    "char14m": [("char14m_C1", 1.0, None), ("char14m_C10", 10.0, None)],
    "char13": [("char13_C10", 10.0, None)],
    "word12": [("word12_C10", 10.0, None)],
    "kiwi12": [("kiwi12_C10", 10.0, None)],
    "kiwi12m": [("kiwi12m_C10", 10.0, None)],
}


def features(rep: str, tr, te) -> sp.csr_matrix:
    path = CACHE / f"X_{rep}.npz"
    if path.exists():
        return sp.load_npz(path).tocsr()
    kw, src = REPS[rep]
    if src == "marked":
        docs = texts(tr) + texts(te)
    elif src == "masked":
        docs = texts(tr, mask=True) + texts(te, mask=True)
    else:
        col = 0 if src == "kiwi" else 1
        docs = [
            l.rstrip("\n").split("\t")[col]
            for f in ("kiwi_train.txt", "kiwi_test.txt")
            for l in open(CACHE / f, encoding="utf-8")
        ]
    vec = TfidfVectorizer(min_df=2, sublinear_tf=True, max_features=300_000, dtype=np.float64, **kw)
    X = vec.fit_transform(docs).tocsr()
    sp.save_npz(path, X)
    return X


def prior_tp(tr, te, a, rows_df, alpha: float = 1.0) -> np.ndarray:
    T = tr.iloc[a]
    glob = np.bincount(T.y, minlength=C) / len(T)
    out = np.zeros((len(rows_df), C))
    table = {}
    for tp, g in T.groupby("tp"):
        table[tp] = (np.bincount(g.y, minlength=C) + alpha * glob) / (len(g) + alpha)
    for i, tp in enumerate(rows_df.tp.values):
        out[i] = table.get(tp, glob)
    return out


def main(reps: list[str]) -> None:
    tr, te = load_both()
    sps = np.load(CACHE / "splits.npz")
    PRED.mkdir(parents=True, exist_ok=True)
    log = open(CACHE / "fit_log.jsonl", "a")
    n = len(tr)
    for rep in reps:
        if rep == "prior":
            for split in SPLITS:
                a = np.arange(n) if split == "full" else sps[f"{split}_train"]
                rows = te if split == "full" else tr.iloc[sps[f"{split}_val"]]
                np.save(PRED / f"prior_tp__{split}.npy", prior_tp(tr, te, a, rows))
            continue
        t0 = time.time()
        X = features(rep, tr, te)
        print(f"[{rep}] features {X.shape} nnz={X.nnz} {time.time() - t0:.0f}s", flush=True)
        X = X.astype(np.float32)  # ~1.5x faster sparse products; sklearn's lbfgs keeps float32
        Xtr, Xte = X[:n], X[n:]
        for split in SPLITS:
            a = np.arange(n) if split == "full" else sps[f"{split}_train"]
            Xe = Xte if split == "full" else Xtr[sps[f"{split}_val"]]
            clf = None
            for name, Cv, cw in CHAINS[rep]:
                out = PRED / f"{name}__{split}.npy"
                if out.exists():
                    clf = None  # cannot warm-start from a cached result; refit next from scratch
                    continue
                t = time.time()
                new = LogisticRegression(C=Cv, class_weight=cw, max_iter=300, tol=1e-4, warm_start=True)
                if clf is not None:
                    new.coef_, new.intercept_ = clf.coef_.copy(), clf.intercept_.copy()
                new.fit(Xtr[a], tr.y.values[a])
                probs = np.zeros((Xe.shape[0], C))
                probs[:, new.classes_] = new.predict_proba(Xe)
                np.save(out, probs)
                rec = {
                    "system": name,
                    "split": split,
                    "train_rows": len(a),
                    "seconds": round(time.time() - t, 1),
                    "n_iter": int(np.max(new.n_iter_)),
                    "warm": clf is not None,
                }
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(rec, flush=True)
                clf = new


if __name__ == "__main__":
    main(sys.argv[1:] or ["prior", "char14", "char14m", "word12", "kiwi12", "kiwi12m", "char13"])
