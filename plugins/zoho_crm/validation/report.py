"""The validation report of one page: problems found, counts, timings and the file's digest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from zoho_crm.files.atomic import write_json_atomic


@dataclass(frozen=True)
class Problem:
    """One finding: where it is (e.g. "line 12 (record 10)", "column Email") and why it matters."""

    position: str
    reason: str

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


@dataclass
class ValidationReport:
    """Outcome of validating one extracted page; valid when it has no errors."""

    file: str
    file_type: str
    records: int = 0
    columns: list[str] = field(default_factory=list)
    id_column: str | None = None
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    sha256: str | None = None
    checks_skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def error(self, position: str, reason: str) -> None:
        self.errors.append(Problem(position, reason))

    def warn(self, position: str, reason: str) -> None:
        self.warnings.append(Problem(position, reason))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["valid"] = self.valid
        return data

    def summary(self, n: int = 5) -> str:
        """One line per first ``n`` errors (for task failure messages)."""
        if self.valid:
            return f"{self.file}: valid {self.file_type} page, {self.records} records"
        lines = [f"{self.file}: {len(self.errors)} validation error(s)"]
        lines += [f"  {problem}" for problem in self.errors[:n]]
        if len(self.errors) > n:
            lines.append(f"  ... and {len(self.errors) - n} more (see the JSON report)")
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> Path:
        """Write the report as JSON atomically (temp file in the same directory, then rename)."""
        return write_json_atomic(path, self.to_dict())
