"""Shared fixtures: small generated KLUE-RE files, and the path to ../shared/data (skipped if absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KLUE_TRAIN = SHARED / "klue-re" / "train.csv"
KLUE_TEST = SHARED / "klue-re" / "test_data.csv"
NOISY = SHARED / "noisy"

needs_shared = pytest.mark.skipif(not KLUE_TRAIN.exists(), reason=f"shared data not found at {SHARED}")


def pytest_collection_modifyitems(config, items):
    """Where a GPU is visible, tests whose exactness holds only on CPU are skipped here; `make test` runs them
    in a second pass with no GPU visible (CUDA_VISIBLE_DEVICES=), so they still run, on CPU."""
    import torch

    if not torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="bit-exact only on CPU: run with CUDA_VISIBLE_DEVICES= (make test does)")
    for item in items:
        if "cpu_exact" in item.keywords:
            item.add_marker(skip)


def entity(word: str, sentence: str, type_: str, occurrence: int = 0) -> dict:
    start = -1
    for _ in range(occurrence + 1):
        start = sentence.index(word, start + 1)
    return {"word": word, "start_idx": start, "end_idx": start + len(word) - 1, "type": type_}


SAMPLE = [
    (
        "〈Something〉는 조지 해리슨이 쓰고 비틀즈가 1969년 앨범 《Abbey Road》에 담은 노래다.",
        ("비틀즈", "ORG"),
        ("조지 해리슨", "PER"),
        "no_relation",
    ),
    ("이순신은 조선 중기의 무신이다.", ("이순신", "PER"), ("무신", "POH"), "per:title"),
    ("삼성전자는 1969년 1월 13일에 설립되었다.", ("삼성전자", "ORG"), ("1969년 1월 13일", "DAT"), "org:founded"),
    ("김철수는 서울에서 태어났다.", ("김철수", "PER"), ("서울", "LOC"), "per:place_of_birth"),
]


def competition_rows(sample=SAMPLE) -> list[dict]:
    rows = []
    for i, (sentence, (sw, st), (ow, ot), label) in enumerate(sample):
        rows.append(
            {
                "id": str(i),
                "sentence": sentence,
                "subject_entity": str(entity(sw, sentence, st)),
                "object_entity": str(entity(ow, sentence, ot)),
                "label": label,
                "source": "wikipedia",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def competition_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "train.csv", competition_rows())


@pytest.fixture
def wide_console(monkeypatch):
    """CLI tables 250 columns wide, whatever the terminal (rich fixes a console's width when it is created)."""
    from re_pipeline import cli

    monkeypatch.setattr(cli.console, "_width", 250)
