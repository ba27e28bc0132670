"""Shared helpers for the validation / leaderboard-agreement research (KLUE-RE).

Data are parsed straight from the CSVs (raw rows, no cleaning) so row counts are exact.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from re_pipeline.evaluation import metrics
from re_pipeline.evaluation.shift import raking_weights

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "klue-re"
TRAIN_CSV = DATA / "train.csv"
TEST_CSV = DATA / "test_data.csv"
LEADERBOARD = REPO.parent / "shared" / "tools" / "leaderboard.py"
MAIN_PY = sys.executable
HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache"
LABELS = json.load(open(REPO / "re_pipeline" / "resources" / "klue_re_labels.json"))["labels"]
L2I = {l: i for i, l in enumerate(LABELS)}
C = len(LABELS)


def load(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    for side, key in (("subject_entity", "s"), ("object_entity", "o")):
        ents = df[side].map(ast.literal_eval)
        df[f"{key}_word"] = ents.map(lambda e: e["word"])
        df[f"{key}_start"] = ents.map(lambda e: int(e["start_idx"]))
        df[f"{key}_end"] = ents.map(lambda e: int(e["end_idx"]))
        df[f"{key}_type"] = ents.map(lambda e: e["type"])
    df["tp"] = df["s_type"] + "|" + df["o_type"]
    if df["label"].astype(str).isin(L2I).all():
        df["y"] = df["label"].astype(str).map(L2I).astype(int)
    else:
        df["y"] = -1
    return df.reset_index(drop=True)


def load_both() -> tuple[pd.DataFrame, pd.DataFrame]:
    return load(TRAIN_CSV), load(TEST_CSV)


# ---------------------------------------------------------------- text views
def _spans(r):
    return sorted([(r.s_start, r.s_end, "s"), (r.o_start, r.o_end, "o")], key=lambda t: t[0], reverse=True)


def marked(r, mask: bool = False) -> str:
    """typed_entity_marker_punct: @ * TYPE * subject @ ... # ^ TYPE ^ object # ; mask: word -> type token."""
    s = r.sentence
    for start, end, who in _spans(r):
        if who == "s":
            word = f"[S-{r.s_type}]" if mask else s[start : end + 1]
            rep = f"@ * {r.s_type} * {word} @"
        else:
            word = f"[O-{r.o_type}]" if mask else s[start : end + 1]
            rep = f"# ^ {r.o_type} ^ {word} #"
        s = s[:start] + rep + s[end + 1 :]
    return f"{r.s_type}|{r.o_type} {s}"


def texts(df: pd.DataFrame, mask: bool = False) -> list[str]:
    return [marked(r, mask) for r in df.itertuples(index=False)]


# ---------------------------------------------------------------- metrics and reweighting: the pipeline's own
def scores(y, probs, w=None) -> dict:
    """Competition micro-F1 and AUPRC (rows weighted by `w` when given)."""
    return {"f1": metrics.micro_f1(y, probs.argmax(1), probs.shape[1], w), "auprc": metrics.auprc(y, probs, w)}


def ipf_weights(val: pd.DataFrame, test: pd.DataFrame, cols=("tp", "source")) -> np.ndarray:
    """Raking weights (mean 1) of the validation rows matching the unlabeled test file's marginals of each
    column in `cols` (re_pipeline.evaluation.shift.raking_weights on data frames)."""
    return raking_weights(
        {col: val[col].tolist() for col in cols},
        {col: test[col].value_counts(normalize=True).to_dict() for col in cols},
    )


# ---------------------------------------------------------------- submissions
def write_sub(path: Path, ids, probs: np.ndarray) -> Path:
    from re_pipeline.core.labels import LabelSet  # noqa: E402
    from re_pipeline.submit.submission import write_submission  # noqa: E402

    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(1, keepdims=True)
    return write_submission(path, [str(i) for i in ids], probs, LabelSet(tuple(LABELS), "klue-re"))


def leaderboard(path: Path) -> dict:
    out = subprocess.run([MAIN_PY, str(LEADERBOARD), str(path)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"micro-F1 ([\d.]+)\s+AUPRC ([\d.]+)", out)
    return {"f1": float(m.group(1)), "auprc": float(m.group(2)), "raw": out.strip()}


def md_table(df: pd.DataFrame, fmt: str = "{:.1f}") -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for idx, row in df.iterrows():
        cells = [fmt.format(v) if isinstance(v, (float, np.floating)) else str(v) for v in row.values]
        lines.append(f"| {idx} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the NLL of softmax(log p / T) on labelled rows (train labels only)."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(probs, 1e-12, None))

    def nll(logt):
        z = logp / np.exp(logt)
        z = z - z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1))
        return float((lse - z[np.arange(len(y)), y]).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def apply_temperature(probs: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(probs, 1e-12, None)) / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
