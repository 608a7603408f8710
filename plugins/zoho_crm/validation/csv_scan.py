"""Fast streaming pass over a CSV page with pyarrow: shape, UTF-8, ids and value formats, in bounded memory.

Rows are addressed here by their index among the well-shaped rows; ``csv_locate`` maps them to line and
record numbers afterwards, only when something was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from zoho_crm.validation.field_types import ValueFormat

BLOCK_BYTES = 1 << 20
EXAMPLES_PER_CHECK = 5
_SMALL_ID = r"^[1-9][0-9]{0,18}$"


@dataclass
class RowIssue:
    """A problem at a well-shaped row (its 0-based index among well-shaped rows)."""

    index: int
    column: str | None
    reason: str


@dataclass
class ScanResult:
    """What the streaming pass found."""

    rows: int = 0
    ragged: int = 0
    issues: list[RowIssue] = field(default_factory=list)
    overflow: list[tuple[str, str]] = field(default_factory=list)
    empty_columns: list[int] = field(default_factory=list)
    duplicate_ids: set[str] = field(default_factory=set)
    duplicate_id_count: int = 0
    failure: str | None = None


class _Counter:
    """Counts issues per check and keeps only the first few examples."""

    def __init__(self, result: ScanResult) -> None:
        self.result = result
        self.seen: dict[tuple[str | None, str], int] = {}

    def add(self, indices: list[int], values: list, total: int, column: str | None, reason: str) -> None:
        key = (column, reason)
        before = self.seen.get(key, 0)
        self.seen[key] = before + total
        room = max(0, EXAMPLES_PER_CHECK - before)
        self.result.issues += [
            RowIssue(i, column, f"{reason}: {_show(value)}" if value else reason)
            for i, value in zip(indices[:room], values[:room], strict=False)
        ]

    def finish(self) -> None:
        for (column, reason), total in self.seen.items():
            if total > EXAMPLES_PER_CHECK:
                where = f"column {column}" if column else "rows"
                self.result.overflow.append((where, f"{total} rows in total: {reason}"))


def scan_csv(
    path: Path, names: list[str], id_index: int | None, formats: dict[int, ValueFormat]
) -> ScanResult:
    """Stream ``path`` (header already read as ``names``) and check every row."""
    result = ScanResult()
    counter = _Counter(result)
    generated = [f"c{i}" for i in range(len(names))]

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        result.ragged += 1
        return "skip"

    reader = pa_csv.open_csv(
        str(path),
        read_options=pa_csv.ReadOptions(
            column_names=generated, skip_rows_after_names=1, block_size=BLOCK_BYTES
        ),
        parse_options=pa_csv.ParseOptions(
            newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_invalid_row
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(generated, pa.binary()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    maybe_empty = set(range(len(names))) - ({id_index} if id_index is not None else set())
    ids = _IdCollector()
    try:
        for batch in reader:
            offset = result.rows
            result.rows += batch.num_rows
            for j, column in enumerate(batch.columns):
                _check_utf8(column, offset, counter, names[j])
                if j in maybe_empty and pc.max(pc.binary_length(column)).as_py():
                    maybe_empty.discard(j)
            for j, value_format in formats.items():
                ok = pc.match_substring_regex(batch.column(j), value_format.pattern)
                if not pc.all(ok).as_py():
                    _report_mask(pc.invert(ok), batch.column(j), offset, counter, names[j], f"not {value_format.expected}")
            if id_index is not None:
                id_column = batch.column(id_index)
                _report_mask(pc.equal(id_column, b""), id_column, offset, counter, names[id_index], "empty record id")
                ids.add(id_column)
    except pa.ArrowInvalid as exc:
        result.failure = str(exc)
    counter.finish()
    result.empty_columns = sorted(maybe_empty) if result.rows else []
    result.duplicate_ids, result.duplicate_id_count = ids.duplicates()
    return result


def _report_mask(mask: pa.Array, values_of: pa.Array, offset: int, counter: _Counter, column: str, reason: str) -> None:
    total = pc.sum(mask).as_py() or 0
    if total:
        first = pc.indices_nonzero(mask)[:EXAMPLES_PER_CHECK]
        values = values_of.take(first).to_pylist()
        counter.add([offset + i for i in first.to_pylist()], values, total, column, reason)


def _check_utf8(column: pa.Array, offset: int, counter: _Counter, name: str) -> None:
    try:
        column.view(pa.string()).validate(full=True)
    except pa.ArrowInvalid:
        bad = [i for i, value in enumerate(column.to_pylist()) if not _is_utf8(value)]
        counter.add([offset + i for i in bad], [None] * len(bad), len(bad), name, "invalid UTF-8")


def _show(value: bytes, limit: int = 40) -> str:
    text = value.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _IdCollector:
    """Collects ids compactly (int64 while they are plain Zoho numbers) and finds duplicates at the end."""

    def __init__(self) -> None:
        self.numbers: list[np.ndarray] = []
        self.texts: list[pa.Array] | None = None

    def add(self, column: pa.Array) -> None:
        if self.texts is None and pc.all(pc.match_substring_regex(column, _SMALL_ID)).as_py():
            try:
                self.numbers.append(pc.cast(column.view(pa.string()), pa.int64()).to_numpy())
                return
            except pa.ArrowInvalid:
                pass
        if self.texts is None:
            self.texts = [pa.array([str(n) for n in chunk], pa.binary()) for chunk in self.numbers]
            self.numbers = []
        self.texts.append(column)

    def duplicates(self, limit: int = 1000) -> tuple[set[str], int]:
        """Up to ``limit`` duplicated non-empty id values and the number of extra occurrences."""
        if self.texts is None:
            if not self.numbers:
                return set(), 0
            values = np.concatenate(self.numbers)
            self.numbers = []
            values.sort()
            repeated = values[1:][values[1:] == values[:-1]]
            return {str(v) for v in np.unique(repeated[: limit * 10])[:limit]}, int(repeated.size)
        counts = pc.value_counts(pa.chunked_array(self.texts, pa.binary()))
        self.texts = []
        repeated = counts.filter(pc.and_(pc.greater(counts.field("counts"), 1),
                                         pc.not_equal(counts.field("values"), b"")))
        extra = (pc.sum(repeated.field("counts")).as_py() or 0) - len(repeated)
        values = repeated.field("values")[:limit].to_pylist()
        return {v.decode("utf-8", "surrogateescape") for v in values}, extra
