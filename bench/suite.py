"""`make bench`: every performance and quality figure, and BENCHMARKS.md written from scratch.

Each section measures `--repeats` times where a figure can vary (throughput, memory) and reports
the median with the range; quality figures are one training run each (runs are deterministic on
CPU for a given seed). A section's raw figures, with the machine, versions, commit, date and
command, are stored in `bench/results/<section>.json`; BENCHMARKS.md is rendered from all stored
sections, each followed by `bench/notes/<section>.md` (a hand-written reading of its figures) when
there is one, so `--only SECTION` re-measures one and rewrites the whole file. Studies that span sessions
(`recipe`, `methods`) are notes only: their tables come from research/study.py.

Usage: python bench/suite.py [--data ../shared/data/klue-re] [--repeats 3] [--only speed ...] [--render-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results"
NOTES = Path(__file__).resolve().parent / "notes"


def in_child(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` in a fresh spawned process: its own memory peak, threads and imports."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def spread(values: list[float], digits: int = 1) -> dict:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": values,
    }


def machine() -> dict:
    from re_pipeline.core.device import cpu_name
    from re_pipeline.records.runs import environment

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        **environment(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


# ---- measurements: each returns the section's raw figures ----


def measure_load_clean(data: str, repeats: int) -> dict:
    from data_bench import bench_load_clean

    return bench_load_clean(Path(data) / "train.csv", max(repeats, 5))


def measure_tokenize(data: str, repeats: int) -> dict:
    import features_bench

    return features_bench.main(Path(data) / "train.csv", repeats)


def speed_runs(data: str, repeats: int, *args, **kwargs) -> dict:
    """Medians of `train_speed_bench.main(train.csv, *args, **kwargs)` over `repeats` fresh processes."""
    import train_speed_bench

    runs = [in_child(train_speed_bench.main, Path(data) / "train.csv", *args, **kwargs) for _ in range(repeats)]
    settings = [key for key in runs[0] if isinstance(runs[0][key], dict)]
    return {
        **{k: v for k, v in runs[0].items() if k not in settings},
        "settings": {
            s: {m: spread([r[s][m] for r in runs], {"mfu": 4, "model_tflops": 3}.get(m, 1)) for m in runs[0][s]}
            for s in settings
        },
    }


def measure_cpu_levers(data: str, repeats: int) -> dict:
    """The transformer's CPU levers against today's path (fp32, eager), each in fresh processes: bf16 autocast
    (what `train.precision: auto` picks on CPUs with avx512_bf16 or AMX) and torch.compile."""
    from re_pipeline.core.device import cpu_bf16_units

    levers = {"fp32 (today's path)": {}, "bf16 autocast": {"bf16": True}, "fp32 + torch.compile": {"compile": True}}
    return {
        "cpu_flags": cpu_bf16_units(),
        "levers": {
            name: speed_runs(data, repeats, size="default", device="cpu", batching="dynamic", **lever)
            for name, lever in levers.items()
        },
    }


LEADERBOARD_RUNS = Path("runs/cpu")  # finished full-data runs to score (README "Benchmarks" has their commands)
GPU_SWEEP = RESULTS / "gpu_sweep_scores.json"  # bench/gpu_session.sh's sweep on one H200, scored on the board


def measure_leaderboard(data: str, repeats: int) -> dict:
    """Every finished run under runs/cpu/ scored on the public leaderboard beside its validation scores."""
    from leaderboard_scores import score_runs

    runs = sorted(d for d in LEADERBOARD_RUNS.iterdir() if (d / "result.json").exists())
    return {"cpu_runs": score_runs(runs)}


def measure_gpu(data: str, repeats: int) -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("the gpu section needs a CUDA device")
    return {"sizes": [speed_runs(data, repeats, size, "cuda", True) for size in ("base", "large")]}


def measure_tapt_head(data: str, repeats: int) -> dict:
    import tapt_head_bench

    runs = [in_child(tapt_head_bench.main, Path(data) / "train.csv") for _ in range(repeats)]
    keys = ("full_s", "gathered_s", "head_share")
    return {
        "rows": [{**row, **{k: spread([r[i][k] for r in runs], 3) for k in keys}} for i, row in enumerate(runs[0])]
    }


def measure_trim(data: str, repeats: int) -> dict:
    import trim_bench

    rows, steps, batch = 1024, 20, 32
    runs = [
        [in_child(trim_bench.measure, data, trim, rows, steps, batch) for trim in (True, False)]
        for _ in range(repeats)
    ]
    keys = ("train_samples_per_s", "inference_rows_per_s", "peak_rss_GiB")
    return {
        "rows_timed": rows,
        "steps": steps,
        "batch": batch,
        "rows": [{**row, **{k: spread([r[i][k] for r in runs], 2) for k in keys}} for i, row in enumerate(runs[0])],
    }


def measure_e5_speed(data: str, repeats: int) -> dict:
    import step_profile

    rows, steps = 2048, 20
    runs = [
        [in_child(step_profile.run_variant, Path(data), v, rows, steps) for v in step_profile.VARIANTS]
        for _ in range(repeats)
    ]
    keys = ("rows_per_s", "gflops", "mfu")
    rows_out = [{**row, **{k: spread([r[i][k] for r in runs], 3) for k in keys}} for i, row in enumerate(runs[0])]
    return {"rows_timed": rows, "steps": steps, "rows": rows_out}


def measure_memory(data: str, repeats: int) -> dict:
    import stage_memory

    runs = [in_child(stage_memory.main, data) for _ in range(repeats)]
    stages = runs[0]["stages"]
    return {
        "overrides": runs[0]["overrides"],
        "stages": {
            s: {m: spread([r["stages"][s][m] for r in runs], 0 if m == "peak_rss_mib" else 1) for m in stages[s]}
            for s in stages
        },
    }


def measure_default_run(data: str, repeats: int) -> dict:
    import default_run

    competition = Path(data).resolve() == (default_run.SHARED / "data" / "klue-re").resolve()
    runs = [default_run.main(data, score=competition) for _ in range(repeats)]
    return {
        "seconds": spread([r["seconds"] for r in runs]),
        "peak_rss_gib": spread([r["peak_rss_gib"] for r in runs], 2),
        "scores": [{k: v for k, v in r.items() if k not in ("seconds", "peak_rss_gib")} for r in runs],
    }


def measure_ddp(data: str, repeats: int) -> dict:
    import ddp_bench

    runs = [ddp_bench.main(data, ddp_bench.STEPS) for _ in range(repeats)]
    return {"steps": ddp_bench.STEPS, "settings": {k: spread([r[k] for r in runs]) for k in runs[0]}}


# ---- rendering: each returns the section's markdown ----


def fmt(s: dict, digits: int = 1) -> str:
    if len(s["runs"]) == 1:
        return f"{s['median']:,.{digits}f}"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def render_load_clean(r: dict) -> str:
    return (
        f"| rows | median seconds | rows/s |\n|---:|---:|---:|\n| {r['rows']:,} | {r['median_s']:.2f} | {r['rows_per_s']:,.0f} |\n\n"
        f"Median of {r['runs']} runs, every cleaning rule on; {r['kept']:,} rows kept."
    )


def render_tokenize(r: dict) -> str:
    lines = ["| processes | rows | median seconds | rows/s |", "|---:|---:|---:|---:|"]
    lines += [
        f"| {t['processes']} | {t['rows']:,} | {t['median_s']:.2f} | {t['rows_per_s']:,} |" for t in r["throughput"]
    ]
    lines += [
        "",
        'Token lengths per input format (the offline 16k tokenizer; "windowed": inputs over 256 tokens cut to a window around both entities):',
        "",
        "| format | type names | mean | p50 | p95 | max | windowed |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {x['format']} | {x['types']} | {x['mean']} | {x['p50']} | {x['p95']} | {x['max_before_window']} | {x['windowed']} |"
        for x in r["lengths"]
    ]
    return "\n".join(lines)


def render_speed(r: dict) -> str:
    (ours, ours_v), (pad, pad_v) = r["settings"].items()
    lines = ["| batching | train samples/s | train tokens/s | inference sentences/s |", "|---|---:|---:|---:|"]
    lines += [
        f"| {name} | {fmt(v['train_samples_per_s'])} | {fmt(v['train_tokens_per_s'], 0)} | {fmt(v['inference_sentences_per_s'])} |"
        for name, v in r["settings"].items()
    ]
    train_gain = ours_v["train_samples_per_s"]["median"] / pad_v["train_samples_per_s"]["median"]
    infer_gain = ours_v["inference_sentences_per_s"]["median"] / pad_v["inference_sentences_per_s"]["median"]
    lines += [
        "",
        f"Our batching is {train_gain:.1f}× faster in training and {infer_gain:.1f}× faster in inference than padding every batch to "
        f"the dataset's longest row ({r['dataset_max_tokens']} tokens). {r['threads']} torch threads.",
    ]
    return "\n".join(lines)


def render_cpu_levers(r: dict) -> str:
    lines = ["| path | train samples/s | inference sentences/s | train × | inference × |", "|---|---:|---:|---:|---:|"]
    base = next(iter(r["levers"].values()))["settings"]["dynamic + length grouping"]
    for name, v in r["levers"].items():
        v = v["settings"]["dynamic + length grouping"]
        gain = {m: v[m]["median"] / base[m]["median"] for m in ("train_samples_per_s", "inference_sentences_per_s")}
        lines.append(
            f"| {name} | {fmt(v['train_samples_per_s'])} | {fmt(v['inference_sentences_per_s'])} "
            f"| {gain['train_samples_per_s']:.2f} | {gain['inference_sentences_per_s']:.2f} |"
        )
    lines += ["", f"CPU bf16 flags: {', '.join(r['cpu_flags']) or 'none'}. The offline 4 × 256 encoder, our batching."]
    return "\n".join(lines)


def _score(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def _score_cells(v: dict) -> str:
    """A scored run's validation, reweighted validation, public scores and minutes, as table cells."""
    return (
        f"{_score(v['val_micro_f1'])} / {_score(v['val_auprc'])} "
        f"| {_score(v['reweighted_micro_f1'])} / {_score(v['reweighted_auprc'])} "
        f"| **{v['public_micro_f1']:.2f} / {v['public_auprc']:.2f}** | {v['seconds'] / 60:.1f}"
    )


def _by_public(runs: dict[str, dict]) -> list[tuple[str, dict]]:
    return sorted(runs.items(), key=lambda kv: -kv[1]["public_micro_f1"])


def render_leaderboard(r: dict) -> str:
    lines = [
        "| run | kind | split | validation micro-F1 / AUPRC | reweighted | **public micro-F1 / AUPRC** | minutes |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, v in _by_public(r["cpu_runs"]):
        lines.append(f"| {name} | {v['kind']} | {v['split']} | {_score_cells(v)} |")
    rows = list(r["cpu_runs"].values())
    if GPU_SWEEP.exists():
        sweep = json.loads(GPU_SWEEP.read_text(encoding="utf-8"))
        rows += list(sweep["runs"].values())
        lines += [
            "",
            f"The transformer recipe (configs/transformer.yaml) and its ablation, {sweep['device']} "
            f"(`{sweep['command']}`; one seed each):",
            "",
            "| variant | change | validation micro-F1 / AUPRC | reweighted | **public micro-F1 / AUPRC** | minutes |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, v in _by_public(sweep["runs"]):
            lines.append(f"| {name} | `{v['change']}` | {_score_cells(v)} |")
    lines += ["", *agreement_lines(rows)]
    return "\n".join(lines)


def agreement_lines(rows: list[dict]) -> list[str]:
    """Spearman's rank correlation of validation with the public board, per split, over these scored runs."""
    from scipy.stats import spearmanr

    lines = ["| split | runs | rank correlation, micro-F1 | rank correlation, AUPRC |", "|---|---:|---:|---:|"]
    for split in sorted({row["split"] for row in rows}):
        picked = [row for row in rows if row["split"] == split and row["val_micro_f1"] is not None]
        if len(picked) < 5:  # a rank correlation of fewer runs says little
            lines.append(f"| {split} | {len(picked)} | too few | too few |")
            continue
        rho = [
            spearmanr([row[f"val_{m}"] for row in picked], [row[f"public_{m}"] for row in picked])[0]
            for m in ("micro_f1", "auprc")
        ]
        lines.append(f"| {split} | {len(picked)} | {rho[0]:.2f} | {rho[1]:.2f} |")
    return [
        "Validation against the board across these runs (Spearman, per validation split; research/agreement/ has the",
        "study across splits):",
        "",
        *lines,
    ]


def render_tapt_head(r: dict) -> str:
    lines = [
        "| padding | batch × tokens | masked tokens | full LM head s/step | gathered head s/step | speed-up | head share of the full step |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for x in r["rows"]:
        gain = x["full_s"]["median"] / x["gathered_s"]["median"]
        lines.append(
            f"| {x['padding']} | {x['batch']} | {x['masked']} | {fmt(x['full_s'], 2)} | {fmt(x['gathered_s'], 2)} | {gain:.1f}× "
            f"| {x['head_share']['median']:.0%} |"
        )
    x = r["rows"][0]
    lines += [
        "",
        f"4 layers × 256, {x['vocab']:,}-token vocabulary, 64 train sentences per step, forward + backward + AdamW, median of 5 steps "
        f"after a warm-up per run; {x['threads']} threads. The full head projects every position onto the vocabulary; TAPT gathers the "
        "masked positions first (`GatheredMLM`).",
    ]
    return "\n".join(lines)


def render_memory(r: dict) -> str:
    lines = ["| stage | peak RSS MiB | seconds |", "|---|---:|---:|"]
    lines += [f"| {name} | {fmt(v['peak_rss_mib'], 0)} | {fmt(v['seconds'])} |" for name, v in r["stages"].items()]
    lines += [
        "",
        f"One `run_pipeline` call with a fresh cache and short budgets (`{' '.join(r['overrides'][2:])}`); a stage's peak includes what "
        "earlier stages still hold (data, tokenizer, the Python and torch runtime of about 0.5 GiB).",
    ]
    return "\n".join(lines)


def render_default_run(r: dict) -> str:
    scores = r["scores"][0]
    public = (
        f"{scores['public_micro_f1']:.2f} / {scores['public_auprc']:.2f}"
        if "public_micro_f1" in scores
        else "not scored"
    )
    same = all(s == scores for s in r["scores"])
    return "\n".join(
        [
            "| wall seconds | peak RSS GiB | validation micro-F1 / AUPRC | public micro-F1 / AUPRC |",
            "|---:|---:|---:|---:|",
            f"| {fmt(r['seconds'])} | {fmt(r['peak_rss_gib'], 2)} | {scores['val_micro_f1']:.2f} / {scores['val_auprc']:.2f} | {public} |",
            "",
            f"`re-pipeline train -d DATA` in a fresh process, {len(r['scores'])} run(s); the peak is the process's own "
            f"resident memory (`os.wait4`). The scores were {'the same in every run' if same else 'not the same in every run'}.",
            *(
                f"- {name}: validation {x['val_micro_f1']:.2f} / {x['val_auprc']:.2f}"
                + (f", public {x['public_micro_f1']:.2f} / {x['public_auprc']:.2f}" if "public_micro_f1" in x else "")
                for name, x in (scores.get("runs") or {}).items()
            ),
        ]
    )


def render_ddp(r: dict) -> str:
    (one, one_v), (two, two_v) = r["settings"].items()
    ratio = two_v["median"] / one_v["median"]
    return (
        f"| setting | train samples/s |\n|---|---:|\n| {one} | {fmt(one_v)} |\n| {two} | {fmt(two_v)} |\n\n"
        f"Two processes run at {ratio:.2f}× the speed of one on the same cores (one thread each, against one process with every core's "
        f"thread). {r['steps']} steps of global batch 32 per run (32 against 2 × 16), default model, no TAPT, validation or test rows."
    )


def render_gpu(r: dict) -> str:
    lines = [
        "| model | batching | train samples/s | real tokens/s | model TFLOP/s | MFU | inference sentences/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for size in r["sizes"]:
        for name, v in size["settings"].items():
            mfu = f"{v['mfu']['median']:.1%}" if "mfu" in v else "—"
            lines.append(
                f"| {size['size']} ({size['non_embedding_params'] / 1e6:.0f}M) | {name} | {fmt(v['train_samples_per_s'])} "
                f"| {fmt(v['train_tokens_per_s'], 0)} | {fmt(v['model_tflops'], 1)} | {mfu} | {fmt(v['inference_sentences_per_s'])} |"
            )
    lines += [
        "",
        f"{r['sizes'][0]['device']}, bf16 autocast, batch 32. MFU: model FLOPs on real tokens over the dense bf16 peak.",
    ]
    return "\n".join(lines)


def render_trim(r: dict) -> str:
    lines = [
        f"configs/e5-small.yaml's model, {r['steps']} AdamW steps of {r['batch']} rows and inference over {r['rows_timed']:,} "
        "training rows, each setting in a fresh process:",
        "",
        "| trim_vocab | vocabulary | parameters (M) | train samples/s | inference rows/s | peak RSS (GiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        figures = " | ".join(fmt(row[k], 2) for k in ("train_samples_per_s", "inference_rows_per_s", "peak_rss_GiB"))
        lines.append(
            f"| {str(row['trim_vocab']).lower()} | {row['vocabulary']:,} | {row['parameters_M']} | {figures} |"
        )
    return "\n".join(lines)


def render_e5_speed(r: dict) -> str:
    base = r["rows"][0]["rows_per_s"]["median"]
    lines = [
        f"configs/e5-small.yaml's model and rows (the first {r['rows_timed']:,} training rows, the run's length-grouped "
        f"batches), {r['steps']} AdamW steps per lever, each in a fresh process; model FLOPs and MFU as "
        "`re_pipeline/training/throughput.py` counts them, against the matmul peaks measured in the same process:",
        "",
        "| lever | batch | precision | trained (M) | rows/s | × today | GFLOP/s | MFU | step ms: collate / forward / backward / AdamW | forward+backward ms by operator |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in r["rows"]:
        ms = row["step_ms"]
        ops = ", ".join(f"{name} {v:.0f}" for name, v in sorted(row["compute_ms_by_op"].items(), key=lambda x: -x[1]))
        lines.append(
            f"| {row['variant']} | {row['batch']} | {row['precision']} | {row['trainable_M']} | "
            f"{fmt(row['rows_per_s'], 1)} | {row['rows_per_s']['median'] / base:.2f} | {fmt(row['gflops'], 0)} | "
            f"{100 * row['mfu']['median']:.0f}% | {ms['collation']:.0f} / {ms['forward']:.0f} / {ms['backward']:.0f} / "
            f"{ms['optimizer']:.0f} | {ops} |"
        )
    peak = r["rows"][0]["peak_gflops"]
    lines += [
        "",
        "Matmul peaks measured in the first process (2048³): "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())
        + ".",
    ]
    stores = [row for row in r["rows"] if row.get("store_rows_per_s")]
    if stores:
        lines.append(
            "Building the frozen-layer store (the bottom K layers once per distinct row, batches of 128): "
            + ", ".join(f"{row['variant']} {row['store_rows_per_s']:.0f} rows/s" for row in stores)
            + "."
        )
    return "\n".join(lines)


SECTIONS = {
    "leaderboard": (
        "Public leaderboard: validation and public scores side by side",
        "bench/leaderboard_scores.py --runs runs/cpu/*",
        measure_leaderboard,
        render_leaderboard,
    ),
    "methods": (  # a study across sessions: its table lives in bench/notes/methods.md
        "Every method of the mission on the pretrained recipe",
        "research/study.py research/studies/methods.yaml, bench/gpu_session.sh",
        None,
        None,
    ),
    "recipe": (  # a study of full runs across sessions: its tables live in bench/notes/recipe.md
        "The pretrained recipe re-tuned: loss, rate, markers, the test's no_relation share, ensembles",
        "research/study.py, research/prior_study.py, research/ensemble_study.py",
        None,
        None,
    ),
    "load_clean": ("Load + validate + clean", "bench/data_bench.py", measure_load_clean, render_load_clean),
    "tokenize": ("Load → clean → format → tokenize", "bench/features_bench.py", measure_tokenize, render_tokenize),
    "speed": (
        "Training and inference speed: our batching against pad-to-longest",
        "bench/train_speed_bench.py",
        speed_runs,
        render_speed,
    ),
    "tapt_head": (
        "TAPT: vocabulary projection only at masked positions",
        "bench/tapt_head_bench.py",
        measure_tapt_head,
        render_tapt_head,
    ),
    "cpu_levers": (
        "CPU precision and compile: the transformer's levers against today's path",
        "bench/train_speed_bench.py [--bf16] [--compile]",
        measure_cpu_levers,
        render_cpu_levers,
    ),
    "default_run": (
        "The default run end to end: time, peak memory, scores",
        "bench/default_run.py",
        measure_default_run,
        render_default_run,
    ),
    "e5_trim": (
        "multilingual-e5-small: what vocabulary trimming saves",
        "bench/trim_bench.py",
        measure_trim,
        render_trim,
    ),
    "e5_speed": (
        "multilingual-e5-small at the speed of the hardware: where a step's time goes, and the levers",
        "bench/step_profile.py",
        measure_e5_speed,
        render_e5_speed,
    ),
    "memory": ("Peak memory and time of each stage", "bench/stage_memory.py", measure_memory, render_memory),
    "ddp": ("Data-parallel training: one process against two", "bench/ddp_bench.py", measure_ddp, render_ddp),
    "gpu": (
        "GPU: base and large encoders in bf16",
        "bench/train_speed_bench.py --size base|large --device cuda --bf16",
        measure_gpu,
        render_gpu,
    ),
}


def render(results: dict[str, dict], current: dict) -> str:
    """The whole BENCHMARKS.md from the stored sections."""
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python bench/suite.py`) from `bench/results/*.json`; do not edit by hand.",
        "Quality is judged on the competition's test through its public leaderboard (`../shared/tools/leaderboard.py`, half",
        "of the test ids); validation scores stand beside it. A random hold-out of train is far easier than that test",
        "(it repeats the entity pairs the test never does), so hold-out-only figures say so in their title.",
        "",
        f"Machine now: {current['cpu']}, {current['cores']} cores, {current['memory_gib']} GiB, {current['device']}; Python {current['python']}, "
        + ", ".join(f"{k} {v}" for k, v in current["versions"].items() if v)
        + ".",
        "",
    ]
    for key, (title, script, measure, render_section) in SECTIONS.items():
        out += [f"## {title}", ""]
        if measure is None:  # a study measured outside the suite, by the scripts named in its notes
            out += [(NOTES / f"{key}.md").read_text(encoding="utf-8").strip(), ""]
            continue
        stored = results.get(key)
        if stored is None:
            why = (
                "the suite's GPU section has not run on a lent GPU machine"
                if key == "gpu"
                else f"`python bench/suite.py --only {key}`"
            )
            out += [f"Not measured yet: {why}.", ""]
            if (NOTES / f"{key}.md").exists():  # figures measured outside the suite, with their command
                out += [(NOTES / f"{key}.md").read_text(encoding="utf-8").strip(), ""]
            continue
        m = stored["machine"]
        out += [
            f"Measured {m['date']} at commit {(m['git']['commit'] or '?')[:8]}{' (dirty)' if m['git']['dirty'] else ''} on {m['cpu']} "
            f"({m['cores']} cores, {m['device']}); `{stored['command']}` ({script}).",
            "",
            render_section(stored["figures"]),
            "",
        ]
        if (NOTES / f"{key}.md").exists():  # hand-written reading of the figures, kept beside them
            out += [(NOTES / f"{key}.md").read_text(encoding="utf-8").strip(), ""]
    return "\n".join(out)


def load_results() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(RESULTS.glob("*.json"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/klue-re", help="folder with train.csv and test_data.csv")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(key for key, section in SECTIONS.items() if section[2]),
        help="measure only these sections (the file is still rewritten whole)",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite BENCHMARKS.md from the stored results, measuring nothing"
    )
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    if not args.render_only and not (Path(args.data) / "train.csv").is_file():
        raise SystemExit(f"no {args.data}/train.csv: the benchmarks need the shared KLUE-RE data (--data DIR)")
    RESULTS.mkdir(exist_ok=True)
    default = [key for key, section in SECTIONS.items() if section[2] and (key != "gpu" or torch.cuda.is_available())]
    if not LEADERBOARD_RUNS.is_dir():
        default.remove("leaderboard")
    for key in [] if args.render_only else args.only or default:
        title, _, measure, _ = SECTIONS[key]
        print(f"== {title}", flush=True)
        start = time.perf_counter()
        figures = measure(args.data, args.repeats)
        command = f"python bench/suite.py --only {key} --data {args.data} --repeats {args.repeats}"
        stored = {
            "machine": machine(),
            "command": command,
            "seconds": round(time.perf_counter() - start),
            "figures": figures,
        }
        (RESULTS / f"{key}.json").write_text(json.dumps(stored, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"   {stored['seconds']} s", flush=True)
    args.out.write_text(render(load_results(), machine()), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
