"""TF-IDF + logistic regression as a run type (`model.kind: tfidf`): n-grams of the marked sentence (and its
type pair) in one or more views, scikit-learn's `TfidfVectorizer` per view and one `LogisticRegression` over
all of them.

Views (`model.tfidf.views`, the `VIEWS` table), each led by the type pair: `char` (character n-grams within
words of the marked sentence), `word` (n-grams of its whitespace tokens) and `morpheme` (n-grams of Kiwi's
form/TAG morphemes of the plain sentence, the entities' wrapped in role-and-type tags:
`<S:PER> 이순신/NNP </S> 은/JX ...`).

`model.tfidf.prior_weight` mixes in the type-pair prior (models/pair_prior.py), fitted on the same rows:
(1 - w) * TF-IDF + w * prior. The prior cannot memorise entity words, so it steadies the ranking on a test
whose entities are new.

`model.tfidf.length_buckets` fits one such model per sentence-length bucket (`LengthBuckets`) and predicts each
row with its bucket's model; `fit` and `load` choose between the two.

A strong, cheap run type on this task's test, and a member `make ensemble` can mix with neural runs: its runs
write the same out-of-fold and test probabilities. Saved as JSON and `.npy` arrays (vocabularies, idf,
coefficients), never pickled, and rebuilt from them for prediction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ..core.errors import PipelineError
from ..core.typed_config import check, option
from ..data.markers import MarkerConfig, mark
from ..data.morphemes import analyse_then_unload, entity_morphemes, space_examples
from ..data.schema import Example
from .pair_prior import PairPrior, PriorConfig


@dataclass(frozen=True)
class TfidfInputs:
    """What a TF-IDF model reads of its rows: the "SUBJ|OBJ" type pairs (which the prior reads too), the marked
    sentences, and the rows themselves (for the morpheme view, analysed only when it is used)."""

    pairs: list[str]
    marked: list[str]
    examples: list[Example]

    def take(self, rows: np.ndarray) -> TfidfInputs:
        """The inputs of the rows at these indices."""
        return TfidfInputs(
            [self.pairs[i] for i in rows],
            [self.marked[i] for i in rows],
            [self.examples[i] for i in rows] if self.examples else [],
        )

    def lengths(self) -> np.ndarray:
        """Characters per marked sentence (the markers add about the same to every row)."""
        return np.array([len(text) for text in self.marked])


@dataclass(frozen=True)
class View:
    """One view: the vectorizer's analyzer, and the text of each row it reads."""

    analyzer: str
    text: Callable[[TfidfInputs], list[str]]


def _led_by_pairs(pairs: list[str], texts: list[str]) -> list[str]:
    return [f"{pair} {text}" for pair, text in zip(pairs, texts)]


def _marked(inputs: TfidfInputs) -> list[str]:
    return _led_by_pairs(inputs.pairs, inputs.marked)


def _morphemes(inputs: TfidfInputs) -> list[str]:
    return _led_by_pairs(inputs.pairs, entity_morphemes(inputs.examples))


VIEWS: dict[str, View] = {
    "char": View("char_wb", _marked),
    "word": View("word", _marked),
    "morpheme": View("word", _morphemes),
}


@dataclass
class TfidfConfig:
    """`model.kind: tfidf` settings."""

    views: list[str] = option(help="feature views: " + " | ".join(VIEWS), factory=lambda: ["word", "morpheme"])
    char_ngrams: list[int] = option(help="char view: shortest and longest n-gram", factory=lambda: [1, 4])
    token_ngrams: list[int] = option(
        help="word and morpheme views: shortest and longest n-gram", factory=lambda: [1, 2]
    )
    min_df: int = option(
        3, "n-grams in fewer training rows are dropped (3 against 2: half the features and the memory, same scores)"
    )
    max_features: int = option(300_000, "the most frequent n-grams kept, per view")
    c: float = option(10.0, "inverse regularisation strength of the logistic regression")
    max_iter: int = option(2000, "solver iterations")
    prior_weight: float = option(
        0.3, "share of the type-pair prior mixed into the probabilities (0: none; 0.3: best entity-split AUPRC)"
    )
    length_buckets: int = option(
        1,
        "models per sentence-length bucket, each row predicted by its bucket's (3: short / medium / long at the "
        "training lengths' terciles; 1: one model, which scored higher on the public leaderboard)",
    )

    def __post_init__(self) -> None:
        check(
            "model.tfidf.views",
            bool(self.views) and set(self.views) <= set(VIEWS),
            "some of " + ", ".join(VIEWS),
            self.views,
        )
        for key in ("char_ngrams", "token_ngrams"):
            low, high = (getattr(self, key) + [0, 0])[:2]
            check(
                f"model.tfidf.{key}",
                len(getattr(self, key)) == 2 and 1 <= low <= high,
                "[shortest, longest] from 1",
                getattr(self, key),
            )
        check("model.tfidf.c", self.c > 0, "positive", self.c)
        check("model.tfidf.min_df", self.min_df >= 1, "at least 1", self.min_df)
        check("model.tfidf.prior_weight", 0 <= self.prior_weight <= 1, "from 0 to 1", self.prior_weight)
        check("model.tfidf.length_buckets", self.length_buckets >= 1, "at least 1", self.length_buckets)

    def ngrams(self, view: str) -> tuple[int, int]:
        return tuple(self.char_ngrams if view == "char" else self.token_ngrams)


def prepare(examples: list[Example], config: TfidfConfig) -> None:
    """Before a run's first fit, on all its rows: the morpheme view's analyses, Kiwi's model unloaded after."""
    if "morpheme" in config.views:
        analyse_then_unload([ex.sentence for ex in examples])


def texts(examples: list[Example], markers: MarkerConfig) -> TfidfInputs:
    """The inputs of `examples`: type pairs, sentences marked as `markers` say (morpheme-spaced with
    `markers.morphemes`), and the rows."""
    spaced = space_examples(examples) if markers.morphemes else examples
    return TfidfInputs(
        [f"{ex.subject.type}|{ex.object.type}" for ex in examples], [mark(ex, markers).text for ex in spaced], examples
    )


def vectorizer(view: str, ngrams: tuple[int, int], **kwargs) -> TfidfVectorizer:
    """One view's vectorizer; tokens are whitespace-separated (no lowercasing, punctuation kept: markers matter).
    Only a word analyzer reads a token pattern (given to the others, scikit-learn warns on the console)."""
    analyzer = VIEWS[view].analyzer
    return TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngrams,
        sublinear_tf=True,
        lowercase=False,
        token_pattern=r"\S+" if analyzer == "word" else None,
        dtype=np.float32,  # half the memory of float64 and faster solver products; lbfgs keeps float32
        **kwargs,
    )


def warm_start(
    classifier: LogisticRegression, init: TfidfModel, vectorizers: dict[str, TfidfVectorizer], classes: np.ndarray
) -> None:
    """Start `classifier` from `init`'s coefficients, matched by view and n-gram and by class (0 for n-grams and
    classes `init` has not seen). The refit starts from the validated fold's model this way: same rows mostly,
    so the solver needs about a third fewer iterations (BENCHMARKS.md, "The default run end to end"). The refit's
    result then depends a little on the fold (on the seed): public scores of seeds 42 and 7 differ by about 0.1."""
    if len(classes) < 3 or len(init.classifier.classes_) < 3:
        return  # binary problems keep one coefficient row: nothing to match by class
    old_columns: dict[tuple[str, str], int] = {}  # (view, n-gram) -> its column in init's features
    for view, v in init.vectorizers.items():
        base = len(old_columns)
        old_columns.update({(view, term): base + column for term, column in v.vocabulary_.items()})
    new_cols, old_cols, base = [], [], 0
    for view, v in vectorizers.items():
        for term, column in v.vocabulary_.items():
            old = old_columns.get((view, term))
            if old is not None:
                new_cols.append(base + column)
                old_cols.append(old)
        base += len(v.vocabulary_)
    old_rows = {label: row for row, label in enumerate(init.classifier.classes_.tolist())}
    coef, intercept = np.zeros((len(classes), base)), np.zeros(len(classes))
    for row, label in enumerate(classes.tolist()):
        if label in old_rows:
            coef[row, new_cols] = init.classifier.coef_[old_rows[label], old_cols]
            intercept[row] = init.classifier.intercept_[old_rows[label]]
    classifier.set_params(warm_start=True)
    classifier.coef_, classifier.intercept_ = coef, intercept


class TfidfModel:
    """Fitted vectorizers (one per view), a classifier over the label set's ids, and the type-pair prior mixed
    in with weight `prior_weight` (None when 0)."""

    def __init__(
        self,
        vectorizers: dict[str, TfidfVectorizer],
        classifier: LogisticRegression,
        num_labels: int,
        prior: PairPrior | None = None,
        prior_weight: float = 0.0,
    ):
        self.vectorizers, self.classifier, self.num_labels = vectorizers, classifier, num_labels
        self.prior, self.prior_weight = prior, prior_weight

    @classmethod
    def fit(
        cls,
        inputs: TfidfInputs,
        labels: list[int],
        num_labels: int,
        config: TfidfConfig,
        seed: int,
        init: TfidfModel | None = None,
    ) -> TfidfModel:
        """`init`: a fitted model whose coefficients start the solver (`warm_start`). The solver stops within its
        tolerance of the same optimum, so the result is close to a fit from zeros, not equal to it."""
        vectorizers = {
            view: vectorizer(view, config.ngrams(view), min_df=config.min_df, max_features=config.max_features)
            for view in config.views
        }
        features = hstack([v.fit_transform(VIEWS[view].text(inputs)) for view, v in vectorizers.items()]).tocsr()
        classifier = LogisticRegression(C=config.c, max_iter=config.max_iter, random_state=seed)
        if init is not None:
            warm_start(classifier, init, vectorizers, np.unique(labels))
        classifier.fit(features, labels)
        prior = None
        if config.prior_weight > 0:
            prior = PairPrior.fit(inputs.pairs, labels, num_labels, PriorConfig(), seed)
        return cls(vectorizers, classifier, num_labels, prior, config.prior_weight)

    def features(self, inputs: TfidfInputs):
        return hstack([v.transform(VIEWS[view].text(inputs)) for view, v in self.vectorizers.items()]).tocsr()

    def predict_proba(self, inputs: TfidfInputs) -> np.ndarray:
        """Probabilities [rows, labels]; labels never seen in training get 0 (before the prior is mixed in)."""
        probs = np.zeros((len(inputs.pairs), self.num_labels))
        if inputs.pairs:
            found = self.classifier.predict_proba(self.features(inputs)).astype(np.float64)
            probs[:, self.classifier.classes_] = found / found.sum(axis=1, keepdims=True)  # float32 rows: sum to 1
        if self.prior is not None:
            probs = (1 - self.prior_weight) * probs + self.prior_weight * self.prior.predict_proba(inputs.pairs)
        return probs

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        views = {
            view: {"ngrams": list(v.ngram_range), "vocabulary": {k: int(i) for k, i in v.vocabulary_.items()}}
            for view, v in self.vectorizers.items()
        }
        (out_dir / "tfidf.json").write_text(
            json.dumps(
                {"views": views, "num_labels": self.num_labels, "prior_weight": self.prior_weight}, ensure_ascii=False
            ),
            encoding="utf-8",
        )
        if self.prior is not None:
            self.prior.save(out_dir)
        arrays = {f"idf_{view}": v.idf_ for view, v in self.vectorizers.items()}
        arrays.update(
            coef=self.classifier.coef_, intercept=self.classifier.intercept_, classes=self.classifier.classes_
        )
        for name, array in arrays.items():
            np.save(out_dir / f"{name}.npy", array, allow_pickle=False)

    @classmethod
    def load(cls, model_dir: Path) -> TfidfModel:
        try:
            meta = json.loads((model_dir / "tfidf.json").read_text(encoding="utf-8"))
            names = [f"idf_{view}" for view in meta["views"]] + ["coef", "intercept", "classes"]
            arrays = {name: np.load(model_dir / f"{name}.npy", allow_pickle=False) for name in names}
            prior_weight = meta.get("prior_weight", 0.0)
        except (OSError, ValueError, KeyError) as exc:
            raise PipelineError(
                f"{model_dir}: the TF-IDF model is missing or broken ({exc}); retrain the run"
            ) from None
        vectorizers = {}
        for view, saved in meta["views"].items():
            vectorizers[view] = vectorizer(view, tuple(saved["ngrams"]), vocabulary=saved["vocabulary"])
            vectorizers[view].idf_ = arrays[f"idf_{view}"]
        classifier = LogisticRegression()
        classifier.coef_, classifier.intercept_, classifier.classes_ = (
            arrays["coef"],
            arrays["intercept"],
            arrays["classes"],
        )
        prior = PairPrior.load(model_dir) if prior_weight > 0 else None
        return cls(vectorizers, classifier, meta["num_labels"], prior, prior_weight)


class LengthBuckets:
    """One `TfidfModel` per sentence-length bucket, each row predicted by its bucket's model: the competition's
    reviewers singled out per-length models. The bucket edges are quantiles of the training rows' lengths, so
    each bucket trains on an equal share of them."""

    def __init__(self, edges: list[float], models: list[TfidfModel]):
        self.edges, self.models = edges, models

    @staticmethod
    def buckets(edges: list[float], inputs: TfidfInputs) -> np.ndarray:
        """Each row's bucket: how many edges its length reaches."""
        return np.searchsorted(edges, inputs.lengths(), side="right")

    @classmethod
    def fit(
        cls,
        inputs: TfidfInputs,
        labels: list[int],
        num_labels: int,
        config: TfidfConfig,
        seed: int,
        init: LengthBuckets | None = None,
    ) -> LengthBuckets:
        """`init`: fitted buckets whose models start each bucket's solver (when the bucket count is the same)."""
        n, labels = config.length_buckets, np.asarray(labels)
        edges = np.quantile(inputs.lengths(), np.arange(1, n) / n).tolist()
        which = cls.buckets(edges, inputs)
        single = replace(config, length_buckets=1)
        models = []
        for bucket in range(n):
            rows = np.flatnonzero(which == bucket)
            if len(set(labels[rows].tolist())) < 2:
                raise PipelineError(
                    f"model.tfidf.length_buckets: bucket {bucket + 1} of {n} (length edges {edges}) has "
                    f"{len(rows)} training rows with fewer than two labels; use fewer buckets"
                )
            start = init.models[bucket] if init is not None and len(init.models) == n else None
            models.append(TfidfModel.fit(inputs.take(rows), labels[rows].tolist(), num_labels, single, seed, start))
        return cls(edges, models)

    def predict_proba(self, inputs: TfidfInputs) -> np.ndarray:
        probs = np.zeros((len(inputs.pairs), self.models[0].num_labels))
        which = self.buckets(self.edges, inputs)
        for bucket, model in enumerate(self.models):
            rows = np.flatnonzero(which == bucket)
            if len(rows):
                probs[rows] = model.predict_proba(inputs.take(rows))
        return probs

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "buckets.json").write_text(json.dumps({"edges": self.edges}), encoding="utf-8")
        for bucket, model in enumerate(self.models):
            model.save(out_dir / f"bucket{bucket}")

    @classmethod
    def load(cls, model_dir: Path) -> LengthBuckets:
        edges = json.loads((model_dir / "buckets.json").read_text(encoding="utf-8"))["edges"]
        return cls(edges, [TfidfModel.load(model_dir / f"bucket{b}") for b in range(len(edges) + 1)])


def fit(
    inputs: TfidfInputs,
    labels: list[int],
    num_labels: int,
    config: TfidfConfig,
    seed: int,
    init: TfidfModel | LengthBuckets | None = None,
) -> TfidfModel | LengthBuckets:
    """A model per length bucket when `config.length_buckets` > 1, else one model; `init` (a fitted model, used
    when it is of the same shape) starts the solver."""
    model = LengthBuckets if config.length_buckets > 1 else TfidfModel
    return model.fit(inputs, labels, num_labels, config, seed, init if isinstance(init, model) else None)


def load(model_dir: Path) -> TfidfModel | LengthBuckets:
    """The model `fit` saved in `model_dir`, bucketed or not."""
    return (LengthBuckets if (model_dir / "buckets.json").exists() else TfidfModel).load(model_dir)
