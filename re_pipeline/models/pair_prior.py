"""The type-pair prior as a run type (`model.kind: prior`): P(relation | subject type, object type) counted on
the training rows, smoothed toward the overall label prior. It reads nothing but the two entity types.

On this task's test it ranks relations well (its AUPRC beats TF-IDF's and the neural default's, on the
entity-split validation as on the public leaderboard), because entity words and contexts the test never
repeats cannot mislead it: a strong ensemble member and a sanity floor for any model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import PipelineError
from ..core.typed_config import check, option
from ..data.markers import MarkerConfig
from ..data.schema import Example


@dataclass
class PriorConfig:
    """`model.kind: prior` settings."""

    smoothing: float = option(10.0, "pseudo-rows of the overall label prior added to each type pair's counts")

    def __post_init__(self) -> None:
        check("model.prior.smoothing", self.smoothing > 0, "above 0", self.smoothing)


def pairs(examples: list[Example], markers: MarkerConfig) -> list[str]:
    """What the prior reads: each row's "SUBJ|OBJ" type pair."""
    return [f"{ex.subject.type}|{ex.object.type}" for ex in examples]


class PairPrior:
    """Label distributions per type pair [labels], and the overall one for pairs never seen in training."""

    def __init__(self, table: dict[str, np.ndarray], overall: np.ndarray):
        self.table, self.overall = table, overall

    @classmethod
    def fit(cls, keys: list[str], labels: list[int], num_labels: int, config: PriorConfig, seed: int) -> PairPrior:
        overall = np.bincount(labels, minlength=num_labels) / len(labels)
        counts: dict[str, np.ndarray] = {}
        for key, label in zip(keys, labels):
            counts.setdefault(key, np.zeros(num_labels))[label] += 1
        table = {key: (c + config.smoothing * overall) / (c.sum() + config.smoothing) for key, c in counts.items()}
        return cls(table, overall)

    def predict_proba(self, keys: list[str]) -> np.ndarray:
        return (
            np.stack([self.table.get(key, self.overall) for key in keys]) if keys else np.zeros((0, len(self.overall)))
        )

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        data = {"overall": self.overall.tolist(), "pairs": {k: v.tolist() for k, v in self.table.items()}}
        (out_dir / "prior.json").write_text(json.dumps(data, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, model_dir: Path) -> PairPrior:
        try:
            data = json.loads((model_dir / "prior.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PipelineError(
                f"{model_dir}: the type-pair prior is missing or broken ({exc}); retrain the run"
            ) from None
        return cls({k: np.array(v) for k, v in data["pairs"].items()}, np.array(data["overall"]))
