"""The offline default tokenizer: trained on the task's text, reloads as a fast XLM-R tokenizer with the same ids."""

from __future__ import annotations

from transformers import AutoTokenizer

from re_pipeline.data.sample import generate
from re_pipeline.models.backbone import BackboneConfig, default_tokenizer


def test_trained_tokenizer_reloads_with_identical_ids(tmp_path):
    sentences = [row["sentence"] for row in generate(300, seed=3)]
    tok = default_tokenizer(sentences, BackboneConfig(vocab_size=500), tmp_path / "tok")
    again = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert again.is_fast and len(again) == len(tok)
    assert [tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.unk_token_id, tok.mask_token_id] == [
        1,
        0,
        2,
        3,
        4,
    ]
    for sentence in sentences[:50] + ["처음 보는 단어 ABC 123"]:
        assert again(sentence)["input_ids"] == tok(sentence)["input_ids"]
    ids = again("김민준은 서울에서 태어났다.")["input_ids"]
    assert (
        ids[0] == 0 and ids[-1] == 2 and again.decode(ids, skip_special_tokens=True) == "김민준은 서울에서 태어났다."
    )
    # a second call reuses the saved tokenizer instead of training again
    assert (
        default_tokenizer([], BackboneConfig(vocab_size=500), tmp_path / "tok")("서울")["input_ids"]
        == tok("서울")["input_ids"]
    )


def test_marker_characters_are_never_unknown(tmp_path):
    tok = default_tokenizer(["김민준은 서울에서 태어났다."] * 20, BackboneConfig(vocab_size=200), tmp_path / "tok")
    ids = tok("@ * PER * 김민준 @ # ^ LOC ^ 서울 #")["input_ids"]
    assert tok.unk_token_id not in ids


def test_added_marker_tokens_tokenize_the_same_after_a_reload(tmp_path):
    from re_pipeline.data.features import prepare_tokenizer
    from re_pipeline.data.markers import MarkerConfig

    sentences = [row["sentence"] for row in generate(300, seed=3)]
    tok = default_tokenizer(sentences, BackboneConfig(vocab_size=500), tmp_path / "tok")
    assert prepare_tokenizer(tok, MarkerConfig(format="typed_entity_marker"), ["PER", "LOC"]) > 0
    tok.save_pretrained(tmp_path / "run")
    again = AutoTokenizer.from_pretrained(tmp_path / "run")
    marked = "<S:PER> 김민준 </S:PER> 은 <O:LOC> 서울 </O:LOC> 에서 태어났다."
    assert tok(marked)["input_ids"] == again(marked)["input_ids"]
