"""Write one bulk read page (CSV or ICS) into a zip on disk, streaming: never a whole page in memory."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .data import Dataset, has_edited_occurrence

CHUNK_ROWS = 5000


@dataclass(frozen=True)
class BuiltPage:
    path: Path
    count: int
    zip_sha256: str
    member_sha256: str
    bytes: int


class _TextParts(list[str]):
    """A write-only text buffer (faster than StringIO for csv.writer with non-ASCII text)."""

    write = list.append


class _HashingSink:
    """Collects text, and every chunk encodes it into the zip member while hashing it."""

    def __init__(self, member: io.BufferedIOBase) -> None:
        self.member = member
        self.sha = hashlib.sha256()
        self.buffer = _TextParts()

    def flush(self) -> None:
        data = "".join(self.buffer).encode("utf-8")
        self.buffer.clear()
        self.sha.update(data)
        self.member.write(data)


def build_page(dataset: Dataset, module: str, indices: np.ndarray, columns: list[str], file_type: str,
               job_id: str, directory: Path) -> BuiltPage:
    """Build ``{job_id}.zip`` holding ``{job_id}.{file_type}`` (written to a temp name, then renamed)."""
    final = directory / f"{job_id}.zip"
    tmp = directory / f".{job_id}.zip.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(f"{job_id}.{file_type}", "w", force_zip64=True) as member:
            sink = _HashingSink(member)  # type: ignore[arg-type]
            if file_type == "ics":
                count = _write_ics(sink, dataset, indices)
            else:
                count = _write_csv(sink, dataset, module, indices, columns)
            sink.flush()
    os.replace(tmp, final)
    return BuiltPage(final, count, file_sha256(final), sink.sha.hexdigest(), final.stat().st_size)


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _write_csv(sink: _HashingSink, dataset: Dataset, module: str, indices: np.ndarray, columns: list[str]) -> int:
    writer = csv.writer(sink.buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for lo in range(0, len(indices), CHUNK_ROWS):
        texts = dataset.text_columns(module, indices[lo:lo + CHUNK_ROWS], columns)
        writer.writerows(zip(*texts, strict=True))
        sink.flush()
    return len(indices)


def ics_escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def ics_fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character (RFC 5545 3.1)."""
    out, current, size = [], [], 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > 75:
            out.append("".join(current))
            current, size = [" "], 1
        current.append(ch)
        size += n
    out.append("".join(current))
    return "\r\n".join(out) + "\r\n"


def utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")


def _write_ics(sink: _HashingSink, dataset: Dataset, indices: np.ndarray) -> int:
    """One VEVENT per event; series carry RRULE; edited occurrences are extra VEVENTs with RECURRENCE-ID.

    An edited occurrence follows its series, or with ``dataset.ics_overrides == "apart"`` precedes the next
    event record and carries that record's Modified_Time: so it can land on another page than its series, and
    a Modified_Time range can hold it without its series (the last event of the module keeps it beside).
    """
    write = sink.buffer.write
    write("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Zoho Corporation//Zoho CRM Bulk Read Simulator//EN\r\n"
          "CALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n")
    names = ["id", "Event_Title", "Venue", "Description", "Recurring_Activity", "Start_DateTime", "End_DateTime",
             "Created_Time", "Modified_Time"]
    apart = dataset.ics_overrides == "apart"
    last = dataset.count("Events") - 1
    for lo in range(0, len(indices), CHUNK_ROWS):
        chunk = indices[lo:lo + CHUNK_ROWS]
        cols = dataset.raw_columns("Events", chunk, names)
        rows = zip(*(cols[n].tolist() for n in names), strict=True)
        previous: list[tuple | None] = [None] * len(chunk)
        if apart:
            before = np.maximum(chunk - 1, 0)
            earlier = dataset.raw_columns("Events", before, names)
            previous = [row if idx > 0 and has_edited_occurrence(idx - 1) else None for row, idx in
                        zip(zip(*(earlier[n].tolist() for n in names), strict=True), chunk.tolist(), strict=True)]
        for row, idx, moved in zip(rows, chunk.tolist(), previous, strict=True):
            rid, title, venue, description, rrule, start, end, created, modified = row
            lines = []
            if moved is not None and moved[4]:
                lines += _override(moved, modified)
            uid = f"{rid}@zohocrm.simulator"
            common = [f"DTSTAMP:{utc(modified)}", f"CREATED:{utc(created)}", f"LAST-MODIFIED:{utc(modified)}"]
            lines += ["BEGIN:VEVENT", f"UID:{uid}", *common, f"DTSTART:{utc(start)}", f"DTEND:{utc(end)}",
                      f"SUMMARY:{ics_escape(title)}"]
            if venue:
                lines.append(f"LOCATION:{ics_escape(venue)}")
            if description:
                lines.append(f"DESCRIPTION:{ics_escape(description)}")
            if rrule:
                lines.append(f"RRULE:{rrule}")
            lines.append("END:VEVENT")
            if rrule and has_edited_occurrence(idx) and (not apart or idx == last):
                lines += _override(row, modified)
            write("".join(ics_fold(line) for line in lines))
        sink.flush()
    write("END:VCALENDAR\r\n")
    return len(indices)


def _override(series: tuple, modified: int) -> list[str]:
    """The edited occurrence of a series row: its second weekly occurrence, moved by one hour."""
    rid, title, _, _, _, start, end, created, _ = series
    common = [f"DTSTAMP:{utc(modified)}", f"CREATED:{utc(created)}", f"LAST-MODIFIED:{utc(modified)}"]
    original = start + 7 * 86400
    return ["BEGIN:VEVENT", f"UID:{rid}@zohocrm.simulator", *common, f"RECURRENCE-ID:{utc(original)}",
            f"DTSTART:{utc(original + 3600)}", f"DTEND:{utc(original + 3600 + end - start)}",
            f"SUMMARY:{ics_escape(title + ' (moved)')}", "END:VEVENT"]
