"""AUPRC tie artefact and a train-validated blend with the type-pair prior.

usage: python blend_check.py
  1. majority: every test row gets the training label prior (constant scores) -> public LB.
  2. prior_tp with ties broken at random (1e-9 jitter) -> public LB (how much of its AUPRC is ties).
  3. blend (1-a)*model + a*prior_tp, a in {0,0.1,...,1} chosen on the entity scheme's validation
     rows (train labels), separately for AUPRC and for micro-F1; then applied to the
     full-train test probabilities -> public LB.
Writes results_blend.md.
"""

import numpy as np
import pandas as pd
from common import CACHE, HERE, C, leaderboard, load_both, md_table, scores, write_sub

PRED = CACHE / "preds"
tr, te = load_both()
sps = np.load(CACHE / "splits.npz")
rows = {}
prior = np.bincount(tr.y.values, minlength=C) / len(tr)
r = leaderboard(write_sub(HERE / "subs" / "majority.csv", te.id.values, np.tile(prior, (len(te), 1))))
rows["majority (constant train prior)"] = {"LB_f1": r["f1"], "LB_auprc": r["auprc"]}
yv = tr.y.values[sps["entity_val"]]
for name in ("prior_tp",):
    for k in ("entity", "full"):
        p = np.load(PRED / f"{name}__{k}.npy")
        j = p + 1e-9 * np.random.default_rng(0).random(p.shape)
        j /= j.sum(1, keepdims=True)
        if k == "entity":
            ent, ent_j = scores(yv, p), scores(yv, j)
        else:
            r = leaderboard(write_sub(HERE / "subs" / "prior_tp_jitter.csv", te.id.values, j))
    rows["prior_tp, ties broken at random"] = {
        "entity_f1": ent_j["f1"],
        "entity_auprc": ent_j["auprc"],
        "LB_f1": r["f1"],
        "LB_auprc": r["auprc"],
    }
pt_val, pt_test = np.load(PRED / "prior_tp__entity.npy"), np.load(PRED / "prior_tp__full.npy")
grid = np.round(np.arange(0, 1.01, 0.1), 2)
for name in ("word12_C10", "kiwi12_C10", "char14_C10", "kiwi12m_C10"):
    pv, pt = np.load(PRED / f"{name}__entity.npy"), np.load(PRED / f"{name}__full.npy")
    sc = {a: scores(yv, (1 - a) * pv + a * pt_val) for a in grid}
    for metric in ("auprc", "f1"):
        a = max(grid, key=lambda g: sc[g][metric])
        r = leaderboard(write_sub(HERE / "subs" / f"{name}+prior_a{a}.csv", te.id.values, (1 - a) * pt + a * pt_test))
        rows[f"{name} + prior_tp (a={a}, chosen on entity-val {metric})"] = {
            "entity_f1": sc[a]["f1"],
            "entity_auprc": sc[a]["auprc"],
            "LB_f1": r["f1"],
            "LB_auprc": r["auprc"],
        }
df = pd.DataFrame(rows).T
text = md_table(df, "{:.2f}")
(HERE / "results_blend.md").write_text(text + "\n")
print(text)
