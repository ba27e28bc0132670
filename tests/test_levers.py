"""The quality levers: TF-IDF + logistic regression as a run type, morpheme spacing, entity-word dropout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from re_pipeline.config import load_config
from re_pipeline.core.errors import PipelineError
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.markers import MarkerConfig
from re_pipeline.data.morphemes import space_examples, space_sentences
from re_pipeline.data.sample import write_sample
from re_pipeline.data.schema import Entity, Example
from re_pipeline.models import tfidf
from re_pipeline.models.backbone import BackboneConfig, build_encoder
from re_pipeline.models.pair_prior import PairPrior, PriorConfig
from re_pipeline.models.relation import ModelConfig, RelationModel
from re_pipeline.models.tfidf import VIEWS, TfidfConfig, TfidfInputs, TfidfModel, texts, vectorizer
from re_pipeline.pipeline import run_members, run_pipeline
from re_pipeline.predict import Predictor
from re_pipeline.submit.ensemble import run_ensemble
from re_pipeline.submit.submission import read_submission, validate_submission


def tfidf_run(tmp_path, name, *overrides, log=lambda message: None):
    train_csv, test_csv = write_sample(tmp_path / "sample", n_train=150, n_test=30)
    config = load_config(
        None,
        [
            "model.kind=tfidf",
            "model.tfidf.min_df=1",
            f"data.train={train_csv}",
            f"data.test={test_csv}",
            f"name={name}",
            *overrides,
        ],
    )
    return run_pipeline(config, tmp_path / "runs" / name, tmp_path / "subs", log=log, cache=tmp_path / "c")


def test_a_tfidf_run_writes_what_a_neural_run_does_and_predicts_like_it(tmp_path):
    run = tfidf_run(tmp_path, "tfidf")
    result = json.loads((run / "result.json").read_text())
    assert (
        result["metrics"]["micro_f1"] > 0
        and (run / "oof_probs.npy").exists()
        and (run / "fold0" / "tfidf" / "coef.npy").exists()
    )
    assert validate_submission(result["submission"], [str(i) for i in range(30)], LabelSet.klue()) == []
    predictor = Predictor.from_run(run)
    test = predictor_examples(tmp_path)
    np.testing.assert_allclose(predictor.predict_test(test), np.load(run / "test_probs.npy"), atol=1e-12)
    label, p = predictor("이순신은 조선 중기의 무신이다.", subject=(0, 2, "PER"), object=(11, 12, "POH"))
    assert label in LabelSet.klue().names and 0 < p <= 1


def predictor_examples(tmp_path):
    from re_pipeline.data.load import load_data

    return load_data(tmp_path / "sample" / "test_data.csv", labels=LabelSet.klue(), test=True).examples


def test_tfidf_runs_ensemble_with_other_runs(tmp_path):
    a, b = tfidf_run(tmp_path, "a"), tfidf_run(tmp_path, "b", "model.tfidf.c=0.5")
    combined = run_ensemble(
        [a, b], "mean", runs_dir=tmp_path / "runs", submissions_dir=tmp_path / "subs", log=lambda m: None
    )
    ids, _, probs = read_submission(json.loads((combined / "result.json").read_text())["submission"])
    _, _, pa = read_submission(json.loads((a / "result.json").read_text())["submission"])
    _, _, pb = read_submission(json.loads((b / "result.json").read_text())["submission"])
    np.testing.assert_allclose(probs, (pa + pb) / 2, atol=1e-9)


def test_morpheme_spacing_splits_words_but_never_entities():
    pytest.importorskip("kiwipiepy", reason="kiwipiepy (a dependency) is not installed on this machine")
    sentence = "조지 해리슨이 쓰고 비틀즈가 불렀다."
    ex = Example("0", sentence, Entity("비틀즈", 11, 13, "ORG"), Entity("조지 해리슨", 0, 5, "PER"), "no_relation")
    (spaced,) = space_examples([ex])
    assert spaced.spans_ok() and spaced.subject.word == "비틀즈" and spaced.object.word == "조지 해리슨"
    assert "해리슨 이 쓰 고 비틀즈 가" in spaced.sentence
    assert space_sentences([sentence]) == [spaced.sentence]  # no boundary fell inside these entity words
    multi = Example(
        "1", "서울대학교에서", Entity("서울대학교", 0, 4, "ORG"), Entity("에서", 5, 6, "POH"), "no_relation"
    )
    assert space_examples([multi])[0].subject.word == "서울대학교"


def test_entity_dropout_masks_only_entity_words_and_only_in_training():
    tiny = BackboneConfig(
        vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_position=40
    )
    model = RelationModel(
        build_encoder(tiny, 50),
        ModelConfig(backbone=tiny, type_pair_heads=False, entity_dropout=1.0),
        3,
        mask_token_id=4,
    )
    ids = torch.arange(10, 20).repeat(2, 1)
    roles = torch.tensor([[0, 1, 1, 0, 2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 2, 2, 1, 0]])
    dropped = model.drop_entities(ids, roles)
    assert torch.equal(dropped == 4, roles > 0) and torch.equal(dropped[roles == 0], ids[roles == 0])
    seen = []  # what reaches the encoder
    model.encoder.register_forward_pre_hook(
        lambda m, args, kw: seen.append(kw["inputs_embeds"].clone()), with_kwargs=True
    )
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "entity_mask": roles,
        "subj_start": torch.tensor([1, 8]),
        "obj_start": torch.tensor([4, 6]),
    }
    model.eval()(**batch)
    model.train()(**batch)
    embeds = model.encoder.get_input_embeddings()
    assert torch.equal(seen[0], model.entity_embedding(embeds(ids), roles))  # evaluation: the words
    assert torch.equal(seen[1], model.entity_embedding(embeds(dropped), roles))  # training: masked entity words


def test_the_type_pair_prior_counts_smooths_and_falls_back_to_the_overall_prior(tmp_path):
    keys, labels = ["PER|LOC"] * 3 + ["ORG|DAT"], [1, 1, 0, 2]
    prior = PairPrior.fit(keys, labels, 3, PriorConfig(smoothing=1.0), seed=0)
    overall = np.array([1, 2, 1]) / 4
    np.testing.assert_allclose(prior.predict_proba(["PER|LOC"])[0], (np.array([1, 2, 0]) + overall) / 4)
    np.testing.assert_allclose(prior.predict_proba(["LOC|LOC"])[0], overall)  # a pair never trained on
    prior.save(tmp_path / "prior")
    again = PairPrior.load(tmp_path / "prior")
    np.testing.assert_array_equal(again.predict_proba(keys), prior.predict_proba(keys))


def test_a_prior_run_predicts_from_the_type_pairs_alone(tmp_path):
    run = tfidf_run(tmp_path, "prior", "model.kind=prior")
    probs = np.load(run / "test_probs.npy")
    test = predictor_examples(tmp_path)
    pairs = [f"{ex.subject.type}|{ex.object.type}" for ex in test]
    first = {}
    for pair, row in zip(pairs, probs):
        np.testing.assert_allclose(first.setdefault(pair, row), row)  # one distribution per type pair
    np.testing.assert_allclose(Predictor.from_run(run).predict_test(test), probs, atol=1e-12)


def test_tfidf_views_are_separate_vocabularies_and_reload_exactly(tmp_path):
    pytest.importorskip("kiwipiepy", reason="kiwipiepy (a dependency) is not installed on this machine")
    examples = [
        Example("0", "이순신은 한산도에서 싸웠다.", Entity("이순신", 0, 2, "PER"), Entity("한산도", 5, 7, "LOC"), "x"),
        Example(
            "1", "삼성전자는 1969년에 세워졌다.", Entity("삼성전자", 0, 3, "ORG"), Entity("1969년", 6, 10, "DAT"), "y"
        ),
    ] * 3
    rows = texts(examples, MarkerConfig(format="entity_marker_punct"))
    labels = [1, 2] * 3
    config = TfidfConfig(views=["char", "word", "morpheme"], min_df=1)
    model = TfidfModel.fit(rows, labels, 4, config, seed=0)
    assert set(model.vectorizers) == {"char", "word", "morpheme"}
    assert "<S:PER> 이순신/NNP" in model.vectorizers["morpheme"].vocabulary_
    assert "@은" in model.vectorizers["word"].vocabulary_ and "PER|LOC" in model.vectorizers["word"].vocabulary_
    model.save(tmp_path / "tfidf")
    again = TfidfModel.load(tmp_path / "tfidf")
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))
    assert model.predict_proba(rows)[:, [0, 3]].sum() == 0  # labels never trained on get 0


def test_a_tfidf_view_outside_the_table_is_refused():
    with pytest.raises(PipelineError, match="some of char, word, morpheme"):
        TfidfConfig(views=["bert"])


def test_the_prior_weight_mixes_the_type_pair_prior_into_tfidf_and_survives_a_reload(tmp_path):
    pairs = ["PER|LOC", "PER|LOC", "ORG|DAT", "ORG|DAT"] * 3
    rows = TfidfInputs(pairs, ["가 는 서울", "나 는 부산", "다 는 1990년", "라 는 2000년"] * 3, [])
    labels = [1, 1, 0, 2] * 3
    plain = TfidfModel.fit(rows, labels, 3, TfidfConfig(views=["word"], min_df=1, prior_weight=0), seed=0)
    mixed = TfidfModel.fit(rows, labels, 3, TfidfConfig(views=["word"], min_df=1, prior_weight=0.25), seed=0)
    prior = PairPrior.fit(pairs, labels, 3, PriorConfig(), seed=0)
    queries = TfidfInputs(["PER|LOC", "LOC|LOC"], ["마 는 대구", "바"], [])
    expected = 0.75 * plain.predict_proba(queries) + 0.25 * prior.predict_proba(queries.pairs)
    np.testing.assert_allclose(mixed.predict_proba(queries), expected)
    mixed.save(tmp_path / "m")
    np.testing.assert_allclose(TfidfModel.load(tmp_path / "m").predict_proba(queries), expected)
    with pytest.raises(PipelineError, match="model.tfidf.prior_weight"):
        TfidfConfig(prior_weight=1.5)


def test_length_buckets_route_each_row_to_its_own_bucket_model_and_reload(tmp_path):
    # the word decides the label in opposite ways in short and long rows: no single linear model fits both
    filler = " 그리고" * 12
    texts_ = ["가 서울", "나 부산", "가 서울" + filler, "나 부산" + filler]
    rows = TfidfInputs(["PER|LOC"] * 16, texts_ * 4, [])
    labels = [1, 2, 2, 1] * 4
    words = {"views": ["word"], "token_ngrams": [1, 1], "min_df": 1, "prior_weight": 0}
    single = tfidf.fit(rows, labels, 3, TfidfConfig(**words), seed=0)
    bucketed = tfidf.fit(rows, labels, 3, TfidfConfig(**words, length_buckets=2), seed=0)
    assert isinstance(single, TfidfModel) and isinstance(bucketed, tfidf.LengthBuckets)
    queries = TfidfInputs(["PER|LOC"] * 4, ["다 서울", "다 부산", "다 서울" + filler, "다 부산" + filler], [])
    assert bucketed.predict_proba(queries).argmax(axis=1).tolist() == [1, 2, 2, 1]
    assert single.predict_proba(queries).argmax(axis=1).tolist() != [1, 2, 2, 1]
    long_rows = np.array([2, 3])
    np.testing.assert_array_equal(
        bucketed.predict_proba(queries)[long_rows], bucketed.models[1].predict_proba(queries.take(long_rows))
    )
    bucketed.save(tmp_path / "b")
    np.testing.assert_array_equal(tfidf.load(tmp_path / "b").predict_proba(queries), bucketed.predict_proba(queries))
    with pytest.raises(PipelineError, match="bucket 2 of 2 .* fewer than two labels"):
        tfidf.fit(rows, [1, 2, 1, 1] * 4, 3, TfidfConfig(views=["word"], min_df=1, length_buckets=2), 0)


def test_a_length_bucketed_run_predicts_its_test_like_the_run(tmp_path):
    run = tfidf_run(tmp_path, "buckets", "model.tfidf.views=[word]", "model.tfidf.length_buckets=3")
    assert (run / "refit" / "tfidf" / "buckets.json").exists() and (run / "fold0" / "tfidf" / "bucket2").is_dir()
    test = predictor_examples(tmp_path)
    np.testing.assert_allclose(Predictor.from_run(run).predict_test(test), np.load(run / "test_probs.npy"), atol=1e-12)


def test_the_morpheme_view_tags_the_entity_morphemes_with_role_and_type():
    pytest.importorskip("kiwipiepy", reason="kiwipiepy (a dependency) is not installed on this machine")
    from re_pipeline.data.morphemes import entity_morphemes

    sentence = "이순신은 조선 중기의 무신이다."
    ex = Example("0", sentence, Entity("이순신", 0, 2, "PER"), Entity("무신", 11, 12, "POH"), "per:title")
    (doc,) = entity_morphemes([ex])
    words = doc.split()
    assert words[:3] == ["<S:PER>", "이순신/NNP", "</S>"] and words[3].startswith("은/")
    inside = words[words.index("<O:POH>") + 1 : words.index("</O>")]
    assert "".join(w.split("/")[0] for w in inside) == "무신"


def test_refit_predicts_the_test_with_one_model_trained_on_every_row(tmp_path):
    logs = []
    run = tfidf_run(tmp_path, "refit", "model.tfidf.views=[word]", "train.refit=auto", log=logs.append)
    assert "refit: the solver starts from fold 1's model" in logs
    result = json.loads((run / "result.json").read_text())
    rows = result["folds"]["refit"]["features"]["examples"]
    assert rows == sum(result["folds"]["fold0"]["rows"].values())  # train, validation and left out: every row
    refit = TfidfModel.load(run / "refit" / "tfidf")
    test = predictor_examples(tmp_path)
    inputs = texts(test, load_config(run / "config.yaml").markers)
    expected = refit.predict_proba(inputs)
    np.testing.assert_allclose(np.load(run / "refit" / "test_probs.npy"), expected, atol=1e-12)
    np.testing.assert_allclose(Predictor.from_run(run).predict_test(test), np.load(run / "test_probs.npy"), atol=1e-12)
    fold_model = TfidfModel.load(run / "fold0" / "tfidf")
    assert not np.allclose(fold_model.predict_proba(inputs), expected)  # the refit model predicts, not the fold's


@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize("view", ["char", "word"])
def test_a_tfidf_view_fits_without_a_warning_on_the_console(view):
    assert VIEWS[view].analyzer.startswith(view)  # char: char_wb
    assert vectorizer(view, (1, 2)).fit(["a b c", "b c d"]).vocabulary_


def warm_rows(n: int, seed: int) -> tuple[TfidfInputs, list[int]]:
    """Rows whose words tell four labels apart, with noise words: a problem the solver needs many steps on."""
    rng = np.random.default_rng(seed)
    cues = [["서울", "부산"], ["회사", "단체"], ["1990년", "봄"], ["아들", "딸"]]
    noise = [f"낱말{i}" for i in range(60)]
    labels = rng.integers(0, 4, n).tolist()
    sentences = [" ".join([rng.choice(cues[y]), *rng.choice(noise, 6)]) for y in labels]
    return TfidfInputs(["PER|LOC"] * n, sentences, []), labels


def test_a_warm_start_copies_coefficients_by_ngram_and_class_and_zeros_the_rest():
    config = TfidfConfig(views=["word"], token_ngrams=[1, 1], min_df=1, prior_weight=0)
    rows, labels = warm_rows(200, 0)
    init = TfidfModel.fit(rows, [y if y != 3 else 2 for y in labels], 5, config, seed=0)  # never saw label 3
    more = TfidfInputs(rows.pairs + ["PER|LOC"], rows.marked + ["새말 서울"], [])
    vectorizers = {"word": vectorizer("word", (1, 1), min_df=1)}
    vectorizers["word"].fit(VIEWS["word"].text(more))
    classifier = tfidf.LogisticRegression()
    tfidf.warm_start(classifier, init, vectorizers, np.array([0, 1, 2, 3]))
    old, new = init.vectorizers["word"].vocabulary_, vectorizers["word"].vocabulary_
    assert classifier.warm_start and classifier.coef_.shape == (4, len(new))
    np.testing.assert_array_equal(classifier.coef_[2, new["서울"]], init.classifier.coef_[2, old["서울"]])
    np.testing.assert_array_equal(classifier.intercept_[:3], init.classifier.intercept_)
    assert classifier.coef_[:, new["새말"]].tolist() == [0] * 4 and not classifier.coef_[3].any()


def test_a_warm_started_fit_reaches_the_cold_optimum_in_fewer_iterations():
    config = TfidfConfig(views=["word"], token_ngrams=[1, 2], min_df=1, prior_weight=0, c=100.0)
    rows, labels = warm_rows(600, 1)
    part = np.arange(480)
    init = TfidfModel.fit(rows.take(part), [labels[i] for i in part], 4, config, seed=0)
    cold = TfidfModel.fit(rows, labels, 4, config, seed=0)
    warm = TfidfModel.fit(rows, labels, 4, config, seed=0, init=init)
    assert warm.classifier.n_iter_[0] < cold.classifier.n_iter_[0]
    np.testing.assert_allclose(warm.predict_proba(rows), cold.predict_proba(rows), atol=0.02)


def test_analysed_rows_need_no_kiwi_model_after_it_is_unloaded():
    pytest.importorskip("kiwipiepy", reason="kiwipiepy (a dependency) is not installed on this machine")
    from re_pipeline.data import morphemes

    sentences = ["이순신은 조선 중기의 무신이다.", "삼성전자는 1969년에 세워졌다."]
    morphemes.analyse_then_unload(sentences)
    assert morphemes._kiwi.cache_info().currsize == 0
    assert [form for form, *_ in morphemes.analyses(sentences[:1])[0]][:2] == ["이순신", "은"]
    assert morphemes._kiwi.cache_info().currsize == 0  # read from the cache: the model stays unloaded
    morphemes.analyses(["세종은 한글을 만들었다."])
    assert morphemes._kiwi.cache_info().currsize == 1  # a new sentence loads it again


def test_a_calibrated_f1_decided_run_predicts_its_test_like_the_run_and_re_decides_in_an_ensemble(tmp_path):
    run = tfidf_run(tmp_path, "decided", "model.tfidf.views=[word]", "train.calibration=bcts", "train.decision=f1")
    result = json.loads((run / "result.json").read_text())
    reference = json.loads((run / "prior.json").read_text())
    assert (
        result["test_prior"]["no_relation_scale"] == reference["scale"] and len(reference["calibration"]["bias"]) == 30
    )
    assert set(result["metrics_decided"]) == set(result["metrics"])  # cross-fitted, beside the raw scores
    assert "calibrated and decided" in (run / "report.html").read_text(encoding="utf-8")
    test = predictor_examples(tmp_path)
    np.testing.assert_allclose(Predictor.from_run(run).predict_test(test), np.load(run / "test_probs.npy"), atol=1e-12)
    with pytest.raises(PipelineError, match="already calibrated"):
        run_ensemble([run], decision="f1", runs_dir=tmp_path / "e", submissions_dir=tmp_path / "s")

    plain = tfidf_run(tmp_path, "plain", "model.tfidf.views=[word]")
    again = run_ensemble(
        [plain], calibration="bcts", decision="f1", runs_dir=tmp_path / "e", submissions_dir=tmp_path / "s"
    )
    # one member, calibrated and decided by the ensemble as its run decided itself: the same probabilities
    np.testing.assert_allclose(np.load(again / "test_probs.npy"), np.load(run / "test_probs.npy"), atol=1e-6)
    prior = json.loads((again / "result.json").read_text())["ensemble"]["test_prior"]
    assert prior["no_relation_scale"] == pytest.approx(result["test_prior"]["no_relation_scale"])
    with pytest.raises(PipelineError, match="at least two members"):
        run_ensemble([plain], runs_dir=tmp_path / "e", submissions_dir=tmp_path / "s")


def test_calibration_and_the_f1_decision_refuse_a_run_without_validation():
    with pytest.raises(PipelineError, match="train.decision f1: fitted on validated rows"):
        load_config(None, ["train.validation=none", "train.decision=f1"])


def test_a_config_with_ensemble_members_trains_them_on_its_split_and_combines_them(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "member.yaml").write_text("name: wide\nseed: 7\nmodel:\n  kind: tfidf\n  tfidf:\n    c: 0.5\n")
    ensemble = ["ensemble.members=[member.yaml]", "ensemble.pool=log", "ensemble.decision=f1"]
    (tmp_path / "cfg" / "main.yaml").write_text("ensemble:\n  members: [member.yaml]\n")
    config = load_config(tmp_path / "cfg" / "main.yaml")  # the member path resolved beside the file naming it
    assert config.ensemble.members == [str(tmp_path / "cfg" / "member.yaml")]
    run = tfidf_run(
        tmp_path, "main", "model.tfidf.views=[word]", *ensemble[1:], f"ensemble.members={config.ensemble.members}"
    )
    combined = run_members(load_config(run / "config.yaml"), run, tmp_path / "subs", log=lambda message: None)
    member = run.parent / f"{run.name}-wide"
    member_config = load_config(member / "config.yaml")
    assert member_config.seed == 42 and member_config.model.tfidf.c == 0.5  # the run's seed (split), its own model
    info = json.loads((combined / "result.json").read_text())["ensemble"]
    assert (
        info["members"] == [str(run), str(member)] and info["pool"] == "log" and info["test_prior"]["decision"] == "f1"
    )
    trained = (member / "result.json").stat().st_mtime_ns
    again = run_members(load_config(run / "config.yaml"), run, tmp_path / "subs", log=lambda message: None)
    assert again != combined and (member / "result.json").stat().st_mtime_ns == trained  # the member reused
    with pytest.raises(PipelineError, match="with ensemble.members the ensemble calibrates"):
        load_config(None, [*ensemble, "train.decision=f1"])
