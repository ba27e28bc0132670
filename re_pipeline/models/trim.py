"""Vocabulary trimming: a converted backbone cut down to the pieces a run's texts use, and back.

multilingual-e5-small spends 96M of its 118M weights on 250k embedding rows, most of them for scripts
a Korean task never sees; training them costs time and memory (their gradients and Adam states).
`trimmed_folder` keeps the rows of the pieces that the run's texts tokenize into (specials, every single
character of those texts and its `▁` form, so augmented text never falls back to `<unk>`). A Unigram
tokenizer restricted to pieces containing the full one's best segmentation finds that same segmentation,
so the texts' token sequences (and logits) are unchanged. `expand` puts the trained rows back into the
full matrix for a saved model, so new sentences are tokenized with the full vocabulary.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoTokenizer

from ..core.errors import PipelineError
from ..core.io_utils import atomic_dir, read_json, write_json
from .packaged import MARK, backbone_folder, check_folder
from .tokenizer import ALPHABET

RECORD = "trim.json"  # written last in a trimmed folder: the backbone it came from and the kept piece ids
WORDS = "embeddings.word_embeddings.weight"


def kept_ids(tokenizer, texts: Iterable[str]) -> list[int]:
    """Ids of the pieces `texts` use in `tokenizer` (a converted backbone's, maybe with marker tokens added:
    those are left out), plus its specials and each character's single pieces."""
    texts = list(texts)
    vocab = tokenizer.get_vocab()
    kept = {i for i in tokenizer.added_tokens_decoder if i < tokenizer.vocab_size}  # <s> <pad> </s> <unk> <mask>
    for enc in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False):
        kept.update(i for i in enc.ids if i < tokenizer.vocab_size)
    chars = set(ALPHABET).union(*map(set, texts)) - {" "}
    kept.update(vocab[p] for c in chars for p in (c, "▁" + c, "▁") if p in vocab)
    return sorted(kept)


def trimmed_folder(full: Path, name: str, kept: list[int], cache: Path, log=print) -> Path:
    """The converted backbone `full` (of backbone `name`) cut to the `kept` piece ids, cached by file and ids."""
    sha = read_json(full / MARK)["sha256"]
    key = hashlib.sha256(json.dumps([sha, kept]).encode()).hexdigest()[:16]
    folder = cache / "trimmed" / key
    if (folder / RECORD).is_file():
        return folder
    with atomic_dir(folder) as tmp:
        _write_trimmed(full, kept, tmp)
        write_json(tmp / RECORD, {"backbone": name, "folder": str(full.resolve()), "sha256": sha, "kept": kept})
    return folder


def _write_trimmed(full: Path, kept: list[int], out: Path) -> None:
    spec = json.loads((full / "tokenizer.json").read_text(encoding="utf-8"))
    new_id = {old: new for new, old in enumerate(kept)}
    spec["model"]["vocab"] = [spec["model"]["vocab"][i] for i in kept]
    spec["model"]["unk_id"] = new_id[spec["model"]["unk_id"]]
    for token in spec["added_tokens"]:
        token["id"] = new_id[token["id"]]
    for token in spec["post_processor"]["special_tokens"].values():
        token["ids"] = [new_id[i] for i in token["ids"]]
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    (out / "tokenizer_config.json").write_bytes((full / "tokenizer_config.json").read_bytes())
    config = json.loads((full / "config.json").read_text(encoding="utf-8"))
    (out / "config.json").write_text(json.dumps({**config, "vocab_size": len(kept)}, indent=1), encoding="utf-8")
    with safe_open(full / "model.safetensors", "pt") as fh:
        weights = {k: fh.get_tensor(k) for k in fh.keys()}
    weights[WORDS] = weights[WORDS][torch.tensor(kept)].clone()
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})


def trim_record(folder: str | Path | None) -> dict | None:
    """The trim record of an encoder folder (a trimmed backbone, or TAPT of one), None if untrimmed."""
    path = Path(folder) / RECORD if folder else None
    return read_json(path) if path is not None and path.is_file() else None


def expand(model, tokenizer, record: dict, cache: Path):
    """A trained model of a trimmed vocabulary (`tokenizer`: trimmed, with the run's added tokens) moved onto
    the full one: returns the full tokenizer with the same added tokens, and sets the model's embeddings to
    the backbone's rows with the trained rows in place of the kept pieces'."""
    full_dir = Path(record["folder"])
    if not (full_dir / MARK).is_file():  # the converted folder is gone: convert the backbone's file again
        full_dir = backbone_folder(record["backbone"], cache)
    check_folder(full_dir, read_json(full_dir / MARK)["sha256"])
    if read_json(full_dir / MARK)["sha256"] != record["sha256"]:
        raise PipelineError(
            f"the model was trained on backbone {record['backbone']!r} from file sha256 {record['sha256'][:16]}…, "
            f"which is no longer the installed one: reinstall that file or retrain"
        )
    kept = record["kept"]
    added = [t for i, t in sorted(tokenizer.added_tokens_decoder.items()) if i >= len(kept)]
    full = AutoTokenizer.from_pretrained(full_dir)
    if added:
        full.add_special_tokens({"extra_special_tokens": [str(t) for t in added]}, replace_extra_special_tokens=False)
    trained = model.encoder.get_input_embeddings().weight.data
    if len(trained) != len(kept) + len(added) or len(full) != full.vocab_size + len(added):
        raise PipelineError(f"the saved model's {len(trained)} embedding rows do not match its trim record")
    with safe_open(full_dir / "model.safetensors", "pt") as fh:
        rows = fh.get_slice(WORDS)[: full.vocab_size].to(trained.dtype)
    rows[torch.tensor(kept)] = trained[: len(kept)]
    model.encoder.set_input_embeddings(
        torch.nn.Embedding.from_pretrained(
            torch.cat([rows, trained[len(kept) :]]), freeze=False, padding_idx=full.pad_token_id
        )
    )
    model.encoder.config.vocab_size = len(full)
    return full
