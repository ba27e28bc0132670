"""A small synthetic Korean RE sample in the competition's CSV format, for a first run without data.

Sentences come from templates over made-up names, with particles chosen by `particles.attach`,
so the whole pipeline runs (and learns something) before the user brings `train.csv`.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from ..core.io_utils import atomic_write
from .particles import attach

PEOPLE = [
    s + g
    for s in "김이박최정강조윤장임한오"
    for g in ("민준", "서연", "지훈", "수아", "우진", "하은", "현우", "지민", "도윤", "예린", "태민", "유나")
]
ORGS = [
    p + q
    for p in ("한빛", "푸른", "새별", "누리", "다온", "미래", "가람", "하늘", "별빛", "온누리")
    for q in ("전자", "은행", "대학교", "항공", "제약", "신문", "건설", "방송")
]
PLACES = [
    "서울",
    "부산",
    "대구",
    "광주",
    "인천",
    "전주",
    "제주",
    "수원",
    "춘천",
    "목포",
    "강릉",
    "포항",
    "여수",
    "안동",
    "청주",
    "원주",
]
TITLES = ["대표이사", "교수", "기자", "가수", "감독", "의원", "회장", "연구원"]
YEARS = [str(y) for y in range(1950, 2021, 3)]

# (label, subject type, object type, template); {s}/{o} take the subject/object, {s:은} attaches a particle.
TEMPLATES = [
    ("per:place_of_birth", "PER", "LOC", "{s:은} {o}에서 태어났다."),
    ("per:place_of_birth", "PER", "LOC", "{o} 출신인 {s:은} 어린 시절을 그곳에서 보냈다."),
    ("per:date_of_birth", "PER", "DAT", "{s:은} {o}에 태어났다."),
    ("per:employee_of", "PER", "ORG", "{s:은} {o}에서 일하고 있다."),
    ("per:employee_of", "PER", "ORG", "{o} 소속 {s:은} 기자회견을 열었다."),
    ("per:title", "PER", "POH", "{s:은} 오랫동안 {o:으로} 활동했다."),
    ("per:spouse", "PER", "PER", "{s:은} {o:와} 결혼했다."),
    ("per:siblings", "PER", "PER", "{s:와} {o:은} 친형제 사이다."),
    ("org:founded", "ORG", "DAT", "{s:은} {o}에 설립되었다."),
    ("org:place_of_headquarters", "ORG", "LOC", "{s:은} 본사를 {o}에 두고 있다."),
    ("org:top_members/employees", "ORG", "PER", "{s:은} {o:을} 새 대표로 선임했다."),
    ("org:member_of", "ORG", "ORG", "{s:은} {o}의 회원사로 가입했다."),
    ("no_relation", "PER", "LOC", "{s:은} 지난주 {o:을} 방문했다."),
    ("no_relation", "PER", "PER", "{s:은} 행사장에서 {o:을} 우연히 만났다."),
    ("no_relation", "ORG", "ORG", "{s:와} {o:은} 같은 날 실적을 발표했다."),
    ("no_relation", "PER", "ORG", "{s:은} {o}의 광고를 보았다."),
]
POOLS = {"PER": PEOPLE, "ORG": ORGS, "LOC": PLACES, "POH": TITLES, "DAT": [f"{y}년" for y in YEARS]}


def _render(template: str, subject: str, obj: str) -> tuple[str, int, int]:
    """Fill a template; return the sentence and the start offsets of subject and object."""
    out, starts, i = "", {}, 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            role, _, particle = template[i + 1 : j].partition(":")
            word = subject if role == "s" else obj
            starts[role] = len(out)
            out += attach(word, particle) if particle else word
            i = j + 1
        else:
            out += template[i]
            i += 1
    return out, starts["s"], starts["o"]


def generate(n: int, seed: int, start_id: int = 0, labelled: bool = True) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        label, stype, otype, template = rng.choice(TEMPLATES)
        subject = rng.choice(POOLS[stype])
        obj = rng.choice([w for w in POOLS[otype] if w != subject])
        sentence, s, o = _render(template, subject, obj)
        rows.append(
            {
                "id": str(start_id + k),
                "sentence": sentence,
                "subject_entity": str(
                    {"word": subject, "start_idx": s, "end_idx": s + len(subject) - 1, "type": stype}
                ),
                "object_entity": str({"word": obj, "start_idx": o, "end_idx": o + len(obj) - 1, "type": otype}),
                "label": label if labelled else "100",
                "source": "synthetic",
            }
        )
    return rows


def write_sample(out_dir: str | Path, n_train: int = 1200, n_test: int = 300, seed: int = 0) -> tuple[Path, Path]:
    """Write `train.csv` and `test_data.csv` (labels 100) into `out_dir`."""
    out_dir = Path(out_dir)
    paths = []
    for name, rows in (
        ("train.csv", generate(n_train, seed)),
        ("test_data.csv", generate(n_test, seed + 1, labelled=False)),
    ):
        with atomic_write(out_dir / name) as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        paths.append(out_dir / name)
    return paths[0], paths[1]
