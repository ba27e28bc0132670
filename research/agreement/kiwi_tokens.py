"""Kiwi morpheme view of every train/test row .

The whole sentence is morpheme-analysed with Kiwi once; morphemes overlapping an entity span
are wrapped in typed marker tokens.
Tokens are `form/TAG`. Writes cache/kiwi_train.txt, cache/kiwi_test.txt (one row per line, two
tab-separated columns: plain view, masked view where entity morphemes become one type token).
usage: .venv/bin/python research/agreement/kiwi_tokens.py
"""

import ast
import csv
import time
from pathlib import Path

from kiwipiepy import Kiwi

HERE = Path(__file__).resolve().parent
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "klue-re"
kiwi = Kiwi(num_workers=1)


def morphs(text: str) -> list[str]:
    text = text.strip()
    return [f"{t.form}/{t.tag}" for t in kiwi.tokenize(text)] if text else []


def row_views(r):
    """Whole sentence analysed once (particles keep their context); morphemes overlapping an
    entity span are wrapped in <S:TYPE> ... </S> / <O:TYPE> ... </O>."""
    s, o = ast.literal_eval(r["subject_entity"]), ast.literal_eval(r["object_entity"])
    sent = r["sentence"]
    spans = [(s["start_idx"], s["end_idx"], "S", s["type"]), (o["start_idx"], o["end_idx"], "O", o["type"])]
    head = f"TP={s['type']}|{o['type']}"
    plain, masked, cur = [head], [head], None
    for t in kiwi.tokenize(sent):
        a, b = t.start, t.start + max(t.len, 1) - 1
        role = next((sp for sp in spans if a <= sp[1] and b >= sp[0]), None)
        if role != cur:
            if cur is not None:
                plain.append(f"</{cur[2]}>")
                masked.append(f"</{cur[2]}>")
            if role is not None:
                plain.append(f"<{role[2]}:{role[3]}>")
                masked += [f"<{role[2]}:{role[3]}>", f"[{role[2]}-{role[3]}]"]
            cur = role
        tok = f"{t.form}/{t.tag}"
        plain.append(tok)
        if role is None:
            masked.append(tok)
    if cur is not None:
        plain.append(f"</{cur[2]}>")
        masked.append(f"</{cur[2]}>")
    return " ".join(plain), " ".join(masked)


for name in ("train", "test_data"):
    t = time.time()
    rows = list(csv.DictReader(open(DATA / f"{name}.csv", encoding="utf-8")))
    out = HERE / "cache" / f"kiwi_{name.split('_')[0]}.txt"
    with open(out, "w", encoding="utf-8") as fh:
        for r in rows:
            p, m = row_views(r)
            fh.write(p.replace("\t", " ") + "\t" + m.replace("\t", " ") + "\n")
    print(name, len(rows), f"{time.time() - t:.1f}s", flush=True)
