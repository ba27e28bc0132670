"""TF-IDF + logistic regression as a run type (`model.kind: tfidf`): character n-grams of the marked sentence
plus the type pair, scikit-learn's `TfidfVectorizer` and `LogisticRegression`.

A strong, cheap baseline on this task's test (it beat the neural default there), and a member `make ensemble`
can mix with neural runs: its runs write the same out-of-fold and test probabilities. Saved as JSON and
`.npy` arrays (vocabulary, idf, coefficients), never pickled, and rebuilt from them for prediction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ..data.markers import MarkerConfig, mark
from ..data.morphemes import space_examples
from ..data.schema import Example
from ..errors import PipelineError
from ..typed_config import check, option


@dataclass
class TfidfConfig:
    """`model.kind: tfidf` settings."""

    ngram_min: int = option(1, "shortest character n-gram")
    ngram_max: int = option(4, "longest character n-gram")
    min_df: int = option(2, "n-grams in fewer training rows are dropped")
    max_features: int = option(300_000, "the most frequent n-grams kept")
    c: float = option(10.0, "inverse regularisation strength of the logistic regression")
    max_iter: int = option(2000, "solver iterations")

    def __post_init__(self) -> None:
        check(
            "model.tfidf.ngram_min", 1 <= self.ngram_min <= self.ngram_max, "between 1 and ngram_max", self.ngram_min
        )
        check("model.tfidf.c", self.c > 0, "positive", self.c)
        check("model.tfidf.min_df", self.min_df >= 1, "at least 1", self.min_df)


def texts(examples: list[Example], markers: MarkerConfig) -> list[str]:
    """What the vectorizer reads: the type pair, then the marked sentence."""
    examples = space_examples(examples) if markers.morphemes else examples
    return [f"{ex.subject.type}|{ex.object.type} {mark(ex, markers).text}" for ex in examples]


class TfidfModel:
    """A fitted vectorizer and classifier over the label set's ids."""

    def __init__(self, vectorizer: TfidfVectorizer, classifier: LogisticRegression, num_labels: int):
        self.vectorizer, self.classifier, self.num_labels = vectorizer, classifier, num_labels

    @classmethod
    def fit(cls, texts: list[str], labels: list[int], num_labels: int, config: TfidfConfig, seed: int) -> TfidfModel:
        vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(config.ngram_min, config.ngram_max),
            min_df=config.min_df,
            sublinear_tf=True,
            max_features=config.max_features,
        )
        classifier = LogisticRegression(C=config.c, max_iter=config.max_iter, random_state=seed)
        classifier.fit(vectorizer.fit_transform(texts), labels)
        return cls(vectorizer, classifier, num_labels)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities [rows, labels]; labels never seen in training get 0."""
        probs = np.zeros((len(texts), self.num_labels))
        probs[:, self.classifier.classes_] = self.classifier.predict_proba(self.vectorizer.transform(texts))
        return probs

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        v = self.vectorizer
        settings = {"ngram_range": list(v.ngram_range), "min_df": v.min_df, "max_features": v.max_features}
        meta = {
            "vectorizer": settings,
            "num_labels": self.num_labels,
            "vocabulary": {k: int(i) for k, i in v.vocabulary_.items()},
        }
        (out_dir / "tfidf.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        for name, array in (
            ("idf", v.idf_),
            ("coef", self.classifier.coef_),
            ("intercept", self.classifier.intercept_),
            ("classes", self.classifier.classes_),
        ):
            np.save(out_dir / f"{name}.npy", array, allow_pickle=False)

    @classmethod
    def load(cls, model_dir: Path) -> TfidfModel:
        try:
            meta = json.loads((model_dir / "tfidf.json").read_text(encoding="utf-8"))
            arrays = {
                name: np.load(model_dir / f"{name}.npy", allow_pickle=False)
                for name in ("idf", "coef", "intercept", "classes")
            }
        except (OSError, ValueError) as exc:
            raise PipelineError(
                f"{model_dir}: the TF-IDF model is missing or broken ({exc}); retrain the run"
            ) from None
        settings = meta["vectorizer"]
        vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=tuple(settings["ngram_range"]),
            sublinear_tf=True,
            vocabulary=meta["vocabulary"],
        )
        vectorizer.idf_ = arrays["idf"]
        classifier = LogisticRegression()
        classifier.coef_, classifier.intercept_, classifier.classes_ = (
            arrays["coef"],
            arrays["intercept"],
            arrays["classes"],
        )
        return cls(vectorizer, classifier, meta["num_labels"])
