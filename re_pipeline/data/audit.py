"""The ledger: what happened to every input row (kept, repaired, dropped or quarantined).

Every rule that changes or removes a row writes here, so the counts always add up to
the rows read and every change can be traced to a rule with its before/after values.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.io_utils import atomic_write


@dataclass(frozen=True)
class Repair:
    """A change to a row that was kept: which rule, which field, the value before and after."""

    row: int
    id: str
    rule: str
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class Removal:
    """A row not kept. `kind` is `quarantined` (unusable) or `dropped` (a duplicate policy removed it)."""

    row: int
    id: str
    kind: str
    rule: str
    reason: str
    raw: str


@dataclass
class Ledger:
    """Per-file record of row outcomes. `rows_read` counts data rows of the input."""

    source: str
    rows_read: int = 0
    repairs: list[Repair] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def repair(self, row: int, id: str, rule: str, field_name: str, before, after) -> None:
        self.repairs.append(Repair(row, id, rule, field_name, str(before), str(after)))

    def quarantine(self, row: int, id: str, rule: str, reason: str, raw) -> None:
        self.removals.append(Removal(row, id, "quarantined", rule, reason, _raw_text(raw)))

    def drop(self, row: int, id: str, rule: str, reason: str, raw) -> None:
        self.removals.append(Removal(row, id, "dropped", rule, reason, _raw_text(raw)))

    def note(self, message: str) -> None:
        self.notes.append(message)

    def counts(self) -> dict[str, int]:
        """Rows per outcome; the four outcomes always sum to `rows_read`."""
        removed = {r.row: r.kind for r in self.removals}
        repaired = {r.row for r in self.repairs} - removed.keys()
        kinds = Counter(removed.values())
        counts = {
            "read": self.rows_read,
            "as_is": self.rows_read - len(repaired) - len(removed),
            "repaired": len(repaired),
            "dropped": kinds["dropped"],
            "quarantined": kinds["quarantined"],
        }
        assert counts["as_is"] >= 0, "ledger counted more outcomes than rows read"
        return counts

    def rule_counts(self) -> dict[str, int]:
        """Rows touched per rule (repairs and removals)."""
        seen = {(r.rule, r.row) for r in self.repairs} | {(r.rule, r.row) for r in self.removals}
        return dict(sorted(Counter(rule for rule, _ in seen).items()))

    def write(self, audit_path: Path, quarantine_path: Path) -> None:
        """Audit CSV (repairs and drops) and quarantine CSV (rows with their reason)."""
        audit_rows = [asdict(r) for r in self.repairs] + [
            {
                "row": r.row,
                "id": r.id,
                "rule": r.rule,
                "field": "row",
                "before": r.raw,
                "after": f"{r.kind}: {r.reason}",
            }
            for r in self.removals
            if r.kind == "dropped"
        ]
        audit_rows.sort(key=lambda r: r["row"])
        _write_csv(audit_path, ["row", "id", "rule", "field", "before", "after"], audit_rows)
        quarantined = [
            {"row": r.row, "id": r.id, "rule": r.rule, "reason": r.reason, "raw": r.raw}
            for r in self.removals
            if r.kind == "quarantined"
        ]
        _write_csv(quarantine_path, ["row", "id", "rule", "reason", "raw"], quarantined)

    def summary(self) -> dict:
        return {"source": self.source, "counts": self.counts(), "rules": self.rule_counts(), "notes": list(self.notes)}


def _raw_text(raw) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with atomic_write(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
