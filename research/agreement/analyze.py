"""Score cached predictions: validation schemes (raw and test-reweighted) vs the public leaderboard.

usage: python analyze.py      (after run_systems.py; scores every system found in cache/preds)
For each system with predictions for every split it
  - scores each scheme's validation rows: micro-F1 / AUPRC raw and importance-weighted (raking
    weights matching the unlabeled test file's (subject type, object type) and source marginals);
  - writes subs/{system}.csv from the full-train model's test probabilities and scores it with
    ../shared/tools/leaderboard.py (the only use of public labels);
  - does the same for two prior-corrected variants (+EM: Saerens et al. 2002 on all 30 classes,
    +EMnr: only the no_relation share re-estimated, +TEM: temperature scaling first (fitted on
    train labels: 2-fold cross-fitted on the validation rows for validation scores, fitted on
    the entity scheme's validation predictions for the test), then EM), the priors being
    estimated on the unlabeled rows being predicted (validation rows, or the test rows) starting
    from the training part's label prior (uniform for class_weight="balanced" systems).
Writes results_systems.md (tables + Spearman) and results_systems.json.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
from common import (
    CACHE,
    HERE,
    C,
    apply_temperature,
    fit_temperature,
    ipf_weights,
    leaderboard,
    load_both,
    md_table,
    scores,
    write_sub,
)
from scipy.stats import spearmanr

from re_pipeline.evaluation.prior import em, em_no_relation

SCHEMES = ("random", "sentence", "entity", "entity2")
PRED = CACHE / "preds"
SUBS = HERE / "subs"


def variants(probs, prior, temp=None):
    """temp: a temperature (fitted on train labels elsewhere), or a callable returning calibrated probs."""
    yield "", probs, None
    adj, pi = em(probs, prior)
    yield "+EM", adj, float(pi[0])
    adj, pi = em_no_relation(probs, prior)
    yield "+EMnr", adj, float(pi[0])
    if temp is not None:
        cal = temp(probs) if callable(temp) else apply_temperature(probs, temp)
        adj, pi = em(cal, prior)
        yield "+TEM", adj, float(pi[0])


def crossfit_temperature(y):
    """2-fold cross-fitted temperature scaling on validation rows (labels of train.csv only)."""

    def f(probs):
        out = np.empty_like(probs)
        half = np.random.default_rng(0).permutation(len(y)) % 2 == 0
        for fit, app in ((half, ~half), (~half, half)):
            out[app] = apply_temperature(probs[app], fit_temperature(probs[fit], y[fit]))
        return out

    return f


def main():
    tr, te = load_both()
    sps = np.load(CACHE / "splits.npz")
    SUBS.mkdir(exist_ok=True)
    lb_cache_path = CACHE / "lb_cache.json"
    lb_cache = json.load(open(lb_cache_path)) if lb_cache_path.exists() else {}
    systems = sorted({p.name.split("__")[0] for p in PRED.glob("*__full.npy")})
    systems = [s for s in systems if all((PRED / f"{s}__{k}.npy").exists() for k in SCHEMES)]
    W = {k: ipf_weights(tr.iloc[sps[f"{k}_val"]], te) for k in SCHEMES}
    prior = {k: np.bincount(tr.y.values[sps[f"{k}_train"]], minlength=C) / len(sps[f"{k}_train"]) for k in SCHEMES}
    prior["full"] = np.bincount(tr.y.values, minlength=C) / len(tr)
    rows = {}
    for s in systems:
        per = {}
        # a class-weighted (balanced) model's implicit training prior is uniform, not the label frequencies
        pri = {k: (np.full(C, 1 / C) if s.endswith("_bal") else v) for k, v in prior.items()}
        calib = s != "prior_tp"
        for k in SCHEMES:
            y = tr.y.values[sps[f"{k}_val"]]
            for suffix, p, nr in variants(
                np.load(PRED / f"{s}__{k}.npy"), pri[k], crossfit_temperature(y) if calib else None
            ):
                r = per.setdefault(suffix, {})
                raw, rw = scores(y, p), scores(y, p, W[k])
                r[f"{k}_f1"], r[f"{k}_auprc"] = raw["f1"], raw["auprc"]
                r[f"{k}_rw_f1"], r[f"{k}_rw_auprc"] = rw["f1"], rw["auprc"]
                if nr is not None:
                    r[f"{k}_est_nr%"] = 100 * nr
        # test: temperature fitted on the entity scheme's validation predictions (train labels)
        t_ent = fit_temperature(np.load(PRED / f"{s}__entity.npy"), tr.y.values[sps["entity_val"]]) if calib else None
        for suffix, p, nr in variants(np.load(PRED / f"{s}__full.npy"), pri["full"], t_ent):
            name = s + suffix
            path = write_sub(SUBS / f"{name}.csv", te.id.values, p)
            key = f"{name}:{hashlib.md5(path.read_bytes()).hexdigest()}"
            if key not in lb_cache:
                lb_cache[key] = leaderboard(path)
            per[suffix]["LB_f1"], per[suffix]["LB_auprc"] = lb_cache[key]["f1"], lb_cache[key]["auprc"]
            if nr is not None:
                per[suffix]["test_est_nr%"] = 100 * nr
            if suffix == "+TEM":
                per[suffix]["T_entity"] = t_ent
            per[suffix]["test_pred_nr%"] = 100 * float((p.argmax(1) == 0).mean())
            rows[name] = per[suffix]
        json.dump(lb_cache, open(lb_cache_path, "w"), indent=1)
    df = pd.DataFrame(rows).T
    df.to_json(HERE / "results_systems.json", orient="index", indent=1)
    out = []
    cols_f1 = [f"{k}{r}_f1" for k in SCHEMES for r in ("", "_rw")] + ["LB_f1"]
    cols_au = [f"{k}{r}_auprc" for k in SCHEMES for r in ("", "_rw")] + ["LB_auprc"]
    base = [s for s in df.index if "+" not in s]
    lr_only = [s for s in base if not s.startswith("prior_tp")]
    for title, names in (
        ("base systems", base),
        ("TF-IDF systems only, prior_tp excluded", lr_only),
        ("base + prior-corrected variants", list(df.index)),
    ):
        sub = df.loc[names]
        out.append(f"### Spearman rank correlation with the public LB ({title}, n={len(names)})\n")
        corr = {}
        for metric, cols in (("f1", cols_f1), ("auprc", cols_au)):
            for c in cols[:-1]:
                rho = spearmanr(sub[c], sub[cols[-1]]).statistic
                corr.setdefault(c.rsplit("_", 1)[0], {})[metric] = rho
        out.append(md_table(pd.DataFrame(corr).T, "{:.3f}") + "\n")
    out.append("### micro-F1 (validation raw / reweighted, public LB)\n")
    out.append(md_table(df[cols_f1].sort_values("LB_f1", ascending=False), "{:.2f}") + "\n")
    out.append("### AUPRC\n")
    out.append(md_table(df[cols_au].sort_values("LB_auprc", ascending=False), "{:.2f}") + "\n")
    nrc = [c for c in df.columns if "nr%" in c or c == "T_entity"]
    out.append("### no_relation: estimated share (EM variants) and predicted share on test\n")
    out.append(md_table(df[nrc], "{:.2f}") + "\n")
    text = "\n".join(out)
    (HERE / "results_systems.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
