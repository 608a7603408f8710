"""Cutting a CSV file into pieces of whole records, and finding line/record positions inside one piece.

A newline ends a record when the number of quote characters before it is even (values with quotes are
quoted and their quotes doubled, so quotes pair up). Pieces are parsed independently, which bounds memory.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PIECE_BYTES = 1 << 20
MAX_RECORD_BYTES = 8 << 20


@dataclass
class Piece:
    """Whole records: the bytes, the file line of the first record and the number of records before it."""

    data: bytes
    first_line: int
    records_before: int = 0
    complete: bool = True  # False: unbalanced quotes (an unclosed quoted value); the stream stops here


def last_boundary(buf: bytes) -> int:
    """Offset just past the last newline of ``buf`` that ends a record (0 if none)."""
    cut = buf.rfind(b"\n") + 1
    if not cut:
        return 0
    quotes = buf.count(b'"', 0, cut)
    while quotes % 2:
        previous = buf.rfind(b"\n", 0, cut - 1) + 1
        if not previous:
            return 0
        quotes -= buf.count(b'"', previous, cut)
        cut = previous
    return cut


def first_boundary(buf: bytes) -> int:
    """Offset just past the first newline of ``buf`` that ends a record (0 if none)."""
    start = quotes = 0
    while (newline := buf.find(b"\n", start)) >= 0:
        quotes += buf.count(b'"', start, newline)
        if quotes % 2 == 0:
            return newline + 1
        start = newline + 1
    return 0


def file_chunks(path: Path, offset: int = 0) -> Iterator[bytes]:
    """The file's bytes from ``offset`` on, ``PIECE_BYTES`` at a time."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(PIECE_BYTES):
            yield chunk


def iter_pieces(chunks: Iterable[bytes], first_line: int, carry: bytes = b"") -> Iterator[Piece]:
    """Pieces of about ``PIECE_BYTES`` of whole records from a stream of byte chunks that starts at a record
    (after ``carry``)."""
    line = first_line
    parts, size = [carry], len(carry)
    for data in chunks:
        parts.append(data)
        size += len(data)
        if size < PIECE_BYTES:
            continue
        buf = b"".join(parts)
        cut = last_boundary(buf)
        if not cut and len(buf) > MAX_RECORD_BYTES:
            yield Piece(buf, line, complete=False)
            return
        if cut:
            yield Piece(buf[:cut], line)
            line += buf.count(b"\n", 0, cut)
            buf = buf[cut:]
        parts, size = [buf], len(buf)
    rest = b"".join(parts)
    if rest.count(b'"') % 2:  # unbalanced: check what precedes the last record end, then stop there
        cut = last_boundary(rest)
        if cut:
            yield Piece(rest[:cut], line)
        yield Piece(rest[cut:], line + rest.count(b"\n", 0, cut), complete=False)
    elif rest:
        yield Piece(rest, line)


_NEWLINE = re.compile(rb"\r\n|\r|\n")


class TrailingBlankLines:
    """Drops the empty lines at the very end of a file (they are not records) and remembers how many.

    Empty lines followed by a record stay (the scan reports them). Pieces start at a record boundary, so in
    a piece with records the first line break after the last one ends that record; the rest are empty lines.
    """

    def __init__(self) -> None:
        self.count = 0
        self.first_line = 0

    def trim(self, pieces: Iterator[Piece]) -> Iterator[Piece]:
        held: list[Piece] = []  # the last piece with records, then pieces holding only line breaks
        blank_bytes = 0
        for piece in pieces:
            blank = piece.complete and not piece.data.strip(b"\r\n")
            if not blank or blank_bytes + len(piece.data) > MAX_RECORD_BYTES:
                yield from held
                held, blank_bytes = [], 0
            held.append(piece)
            blank_bytes += len(piece.data) if blank else 0
            if not piece.complete:
                yield from held
                return
        if not held:
            return
        last = held[0]
        content = last.data.rstrip(b"\r\n")
        if content:
            ending = _NEWLINE.match(last.data, len(content))
            kept = content + (ending.group() if ending else b"")
            yield Piece(kept, last.first_line, last.records_before, last.complete)
            rest = [last.data[len(kept) :], *(piece.data for piece in held[1:])]
            self.first_line = last.first_line + kept.count(b"\n")
        else:
            rest = [piece.data for piece in held]
            self.first_line = last.first_line
        self.count = sum(len(_NEWLINE.findall(data)) for data in rest)


@dataclass
class PiecePositions:
    """Positions inside one piece, from the stdlib csv module: well-shaped row index -> (line, record)."""

    positions: dict[int, tuple[int, int]] = field(default_factory=dict)
    ragged: list[tuple[int, int, int]] = field(default_factory=list)
    bad_utf8: list[tuple[int, int, int]] = field(default_factory=list)
    records: int = 0
    failure: str | None = None


def locate_in_piece(piece: Piece, columns: int, wanted: set[int]) -> PiecePositions:
    """Walk one piece with the stdlib csv module (only done when the fast pass found something in it).

    Ragged rows are those with another column count (an empty line is a row of empty values, as in pyarrow);
    ``bad_utf8`` holds (line, record, column index) of values with invalid UTF-8.
    """
    found = PiecePositions()
    text = piece.data.decode("utf-8", "surrogateescape")
    check_utf8 = not _is_utf8(text)
    reader = csv.reader(io.StringIO(text, newline="\n"))
    index, previous_line = -1, 0
    field_limit = csv.field_size_limit(len(piece.data) + 1)  # the stdlib default (128 KiB) is too small
    try:
        for number, row in enumerate(reader, start=1):
            line = piece.first_line + previous_line
            record = piece.records_before + number
            previous_line = reader.line_num
            found.records = number
            if check_utf8:
                found.bad_utf8 += [(line, record, j) for j, value in enumerate(row) if not _is_utf8(value)]
            if row and len(row) != columns:
                found.ragged.append((line, record, len(row)))
                continue
            index += 1
            if index in wanted:
                found.positions[index] = (line, record)
    except csv.Error as exc:
        found.failure = f"line {piece.first_line + previous_line}: {exc}"
    finally:
        csv.field_size_limit(field_limit)
    return found


def _is_utf8(text: str) -> bool:
    """False when ``text`` holds bytes that were not UTF-8 (decoded with surrogateescape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
