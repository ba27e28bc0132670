"""TF-IDF + logistic regression baseline on the same stratified 20% hold-out the pipeline uses.

Character n-grams (1-4) of the marked sentence (typed_entity_marker_punct) plus the
subject/object type pair; scored with the competition metrics.
Usage: python bench/tfidf_baseline.py [../shared/data/klue-re/train.csv]
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from re_pipeline.config import Config
from re_pipeline.data.load import load_data
from re_pipeline.data.markers import MarkerConfig, mark
from re_pipeline.data.split import split_rows
from re_pipeline.evaluation.metrics import compute_metrics


def main(path: str) -> dict:
    start = time.perf_counter()
    cfg = Config()
    loaded = load_data(path)
    examples, label_set = loaded.examples, loaded.label_set
    fold = split_rows(examples, cfg.train.split, "holdout", cfg.train.holdout_fraction, cfg.train.folds, cfg.seed)[0]
    train_idx, val_idx = fold.train, fold.val
    markers = MarkerConfig(format="typed_entity_marker_punct")
    texts = [f"{ex.subject.type}|{ex.object.type} {mark(ex, markers).text}" for ex in examples]
    y = np.array(label_set.ids(ex.label for ex in examples))
    vectorizer = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True, max_features=300_000
    )
    x_train = vectorizer.fit_transform([texts[i] for i in train_idx])
    x_val = vectorizer.transform([texts[i] for i in val_idx])
    clf = LogisticRegression(C=10.0, max_iter=2000)
    clf.fit(x_train, y[train_idx])
    probs = np.zeros((len(val_idx), len(label_set)))
    probs[:, clf.classes_] = clf.predict_proba(x_val)
    metrics = compute_metrics(y[val_idx], probs)
    return {
        "train_rows": len(train_idx),
        "val_rows": len(val_idx),
        **metrics,
        "seconds": round(time.perf_counter() - start, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/klue-re/train.csv")))
