"""Fast pass over a CSV page with pyarrow: shape, UTF-8, ids and value formats, in bounded memory.

The file is cut into ~1 MiB pieces of whole records, each parsed by ``pyarrow.csv.read_csv`` and checked
with vectorised ``pyarrow.compute`` calls. Only a piece where something was found is walked again with the
stdlib csv module to name line and record numbers.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# pyarrow's mimalloc commits whole arena chunks up front by default, ~10 MB of RSS for nothing here. Read once
# when pyarrow loads; an explicit setting wins, and it has no effect if pyarrow was imported before this module.
os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402

from zoho_crm.validation.csv_ids import IdCollector  # noqa: E402
from zoho_crm.validation.csv_pieces import Piece, locate_in_piece  # noqa: E402
from zoho_crm.validation.field_types import ValueFormat  # noqa: E402
from zoho_crm.validation.report import Problem  # noqa: E402

EXAMPLES_PER_CHECK = 5
RAGGED_LIMIT = 20
DUPLICATE_LIMIT = 20
_RAGGED = ("rows", "another column count than the header")


def position(line: int, record: int, column: str | None = None) -> str:
    """The report's position text, e.g. "line 12 (record 10), column Email"."""
    text = f"line {line} (record {record})"
    return f"{text}, column {column}" if column else text


@dataclass
class ScanResult:
    """What the pass found: record count, problems in file order, columns empty on every row."""

    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    empty_columns: list[int] = field(default_factory=list)
    unparsable: bool = False


@dataclass
class _Layout:
    names: list[str]
    id_index: int | None


class _Tally:
    """Counts findings per check, keeps the first few as examples and reports the totals at the end."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str], int] = {}

    def room(self, key: tuple[str, str], limit: int = EXAMPLES_PER_CHECK) -> int:
        return max(0, limit - self.totals.get(key, 0))

    def add(self, key: tuple[str, str], count: int) -> None:
        self.totals[key] = self.totals.get(key, 0) + count

    def overflow(self, limit_of: dict[str, int]) -> list[Problem]:
        return [
            Problem(where, f"{total} in total: {reason}")
            for (where, reason), total in self.totals.items()
            if total > limit_of.get(reason, EXAMPLES_PER_CHECK)
        ]


def scan_csv(
    pieces: Iterator[Piece],
    names: list[str],
    id_index: int | None,
    formats: dict[int, ValueFormat],
    *,
    reread: Callable[[], Iterator[Piece]],
    ids_path: Path | None = None,
) -> ScanResult:
    """Check every record of ``pieces`` (the data after the header); ``reread`` starts the pieces over
    (only needed when ids repeat, to name the records). ``ids_path``: write the page's sorted ids there."""
    layout = _Layout(names, id_index)
    result, tally, ids = ScanResult(), _Tally(), IdCollector()
    maybe_empty = set(range(len(names))) - {id_index}
    groups: dict[ValueFormat, list[int]] = {}
    for j, value_format in formats.items():
        groups.setdefault(value_format, []).append(j)
    checked = {j for group in groups.values() for j in group} | ({id_index} - {None})
    for piece in pieces:
        piece.records_before = result.records
        if not piece.complete:
            result.problems.append(Problem(
                f"line {piece.first_line}",
                "unbalanced quotes from here on (a quoted value is not closed, or a quote stands inside an "
                "unquoted value); these records were not checked",
            ))
            result.unparsable = True
            break
        # Only the columns something still looks at are converted (cheaper); every column is checked for
        # shape by the parser and for UTF-8 on the whole piece.
        table, ragged, utf8_ok, failure = _parse(piece.data, names, sorted(checked | maybe_empty))
        if failure:
            _report_unparsable(piece, names, failure, result)
            continue
        result.records += table.num_rows + ragged
        examples: list[tuple[int, str, str]] = []  # (row index, column, reason)
        for j in list(maybe_empty):
            if pc.max(pc.binary_length(table.column(f"c{j}"))).as_py():
                maybe_empty.discard(j)
        for value_format, columns in groups.items():
            if _all_match(table, columns, value_format):
                continue
            for j in columns:
                column = table.column(f"c{j}")
                ok = pc.match_substring_regex(column, value_format.pattern)
                _collect(pc.invert(ok), column, names[j], f"not {value_format.expected}", tally, examples)
        if id_index is not None:
            id_column = table.column(f"c{id_index}")
            if not ids.add(id_column):
                _collect(_is_empty(id_column), None, names[id_index], "empty record id", tally, examples)
        if examples or ragged or not utf8_ok:
            _report_positions(piece, layout, examples, tally, result)
    result.empty_columns = sorted(maybe_empty) if result.records else []
    result.problems += tally.overflow({_RAGGED[1]: RAGGED_LIMIT})
    if id_index is not None:
        if ids_path is not None:
            ids.write_index(ids_path)
        result.problems += _duplicate_ids(reread(), layout, ids)
    return result


def _parse(data: bytes, names: list[str], include: list[int]):
    """Parse one piece, converting the ``include`` columns (named ``c<index>``).

    Returns (table, ragged row count, UTF-8 valid, failure message or None); with invalid UTF-8 the values
    are binary so that the other checks still run.
    """
    ragged = 0

    def on_ragged(row: pa_csv.InvalidRow) -> str:
        nonlocal ragged
        ragged += 1
        return "skip"

    utf8_ok = _is_utf8(data)
    generated = [f"c{i}" for i in range(len(names))]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=generated, block_size=len(data) + 1, use_threads=False),
            parse_options=pa_csv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_ragged
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(generated, pa.string() if utf8_ok else pa.binary()),
                check_utf8=False,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                include_columns=[generated[j] for j in include],
            ),
        )
    except pa.ArrowInvalid as exc:
        return None, 0, utf8_ok, str(exc)
    return table, ragged, utf8_ok, None


def _is_utf8(data: bytes) -> bool:
    """Whole-piece UTF-8 check with Arrow's fast validator (one string value spanning the piece)."""
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    try:
        pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _all_match(table: pa.Table, columns: list[int], value_format: ValueFormat) -> bool:
    """One regex call for all columns of a format (each call compiles the pattern)."""
    chunks = [chunk for j in columns for chunk in table.column(f"c{j}").chunks]
    combined = pa.chunked_array(chunks, table.column(f"c{columns[0]}").type)
    return bool(pc.all(pc.match_substring_regex(combined, value_format.pattern)).as_py())


def _is_empty(column: pa.ChunkedArray) -> pa.ChunkedArray:
    # No Python scalars here: converting one makes pyarrow import pandas (tens of MB of RSS).
    return pc.invert(pc.cast(pc.binary_length(column), pa.bool_()))


def _collect(mask, values, column: str, reason: str, tally: _Tally, examples: list) -> None:
    total = pc.sum(mask).as_py() or 0
    if not total:
        return
    key = (f"column {column}", reason)
    room = tally.room(key)
    tally.add(key, total)
    if room:
        indices = pc.indices_nonzero(mask)[:room]
        shown = values.take(indices).to_pylist() if values is not None else [None] * len(indices)
        examples += [
            (i, column, f"{reason}: {_show(value)}" if value else reason)
            for i, value in zip(indices.to_pylist(), shown, strict=True)
        ]


def _report_positions(piece: Piece, layout: _Layout, examples: list, tally: _Tally, result: ScanResult) -> None:
    found = locate_in_piece(piece, len(layout.names), {index for index, _, _ in examples})
    problems: list[tuple[int, int, Problem]] = []
    for line, record, count in found.ragged[: tally.room(_RAGGED, RAGGED_LIMIT)]:
        problems.append((line, 0, Problem(position(line, record), f"{count} columns, the header has "
                                                                  f"{len(layout.names)}")))
    tally.add(_RAGGED, len(found.ragged))
    for line, record, j in found.bad_utf8:
        key = (f"column {layout.names[j]}", "invalid UTF-8")
        if tally.room(key):
            problems.append((line, j, Problem(position(line, record, layout.names[j]), "invalid UTF-8")))
        tally.add(key, 1)
    for index, column, reason in examples:
        line, record = found.positions.get(index, (piece.first_line, 0))
        problems.append((line, 0, Problem(position(line, record, column), reason)))
    if found.failure:
        problems.append((0, 0, Problem("file", f"stdlib csv could not re-read the rows near {found.failure}")))
    result.problems += [problem for _, _, problem in sorted(problems, key=lambda p: (p[0], p[1]))]


def _report_unparsable(piece: Piece, names: list[str], failure: str, result: ScanResult) -> None:
    found = locate_in_piece(piece, len(names), set())
    last = piece.first_line + piece.data.count(b"\n")
    result.problems.append(Problem(f"lines {piece.first_line}-{last}", f"not parsable as CSV: {failure}"))
    result.records += found.records
    result.unparsable = True


def _duplicate_ids(pieces: Iterator[Piece], layout: _Layout, ids: IdCollector) -> list[Problem]:
    """Second pass, only when ids repeat: name the records holding a repeated id (first few)."""
    repeated, extra = ids.duplicates()
    if not repeated:
        return []
    value_set = pa.array(sorted(repeated), pa.binary())
    id_name = layout.names[layout.id_index]
    seen: set[bytes] = set()
    problems: list[Problem] = []
    records = 0
    for piece in pieces:
        piece.records_before = records
        table, ragged, _, failure = _parse(piece.data, layout.names, [layout.id_index])
        if failure:
            break
        records += table.num_rows + ragged
        column = table.column(0).cast(pa.binary())
        hits = pc.indices_nonzero(pc.is_in(column, value_set=value_set)).to_pylist()
        if not hits:
            continue
        found = locate_in_piece(piece, len(layout.names), set(hits))
        for index, value in zip(hits, column.take(hits).to_pylist(), strict=True):
            if value in seen and len(problems) < DUPLICATE_LIMIT:
                line, record = found.positions.get(index, (piece.first_line, 0))
                problems.append(Problem(position(line, record, id_name),
                                        f"duplicate record id {value.decode('utf-8', 'replace')}"))
            seen.add(value)
        if len(problems) >= DUPLICATE_LIMIT:
            break
    if extra > len(problems):
        problems.append(Problem(f"column {id_name}", f"{extra} repeated record ids in total"))
    return problems


def _show(value: str | bytes, limit: int = 40) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return repr(text if len(text) <= limit else text[:limit] + "...")
