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

from .data import MODULES, Dataset, has_edited_occurrence, owner_subfield

FLUSH_ROWS = 2000


@dataclass(frozen=True)
class BuiltPage:
    path: Path
    count: int
    zip_sha256: str
    member_sha256: str
    bytes: int


class _HashingSink:
    """Collects text, and every so often encodes it into the zip member while hashing it."""

    def __init__(self, member: io.BufferedIOBase) -> None:
        self.member = member
        self.sha = hashlib.sha256()
        self.buffer = io.StringIO()

    def flush(self) -> None:
        data = self.buffer.getvalue().encode("utf-8")
        self.sha.update(data)
        self.member.write(data)
        self.buffer = io.StringIO()


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
    spec = MODULES[module]
    plan = []
    for col in columns:
        base, _, sub = col.partition(".")
        plan.append((base, sub, spec.get(base)))
    writer = csv.writer(sink.buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for n, idx in enumerate(indices.tolist(), 1):
        record = dataset.record(module, idx)
        row = []
        for base, sub, fspec in plan:
            raw = record[base]
            if sub:
                row.append(owner_subfield(str(raw), sub))
            else:
                row.append(dataset.format(fspec, raw, idx))  # type: ignore[arg-type]
        writer.writerow(row)
        if n % FLUSH_ROWS == 0:
            sink.flush()
            writer = csv.writer(sink.buffer, lineterminator="\r\n")
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
    """One VEVENT per event; series carry RRULE; edited occurrences are extra VEVENTs with RECURRENCE-ID."""
    write = sink.buffer.write
    write("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Zoho Corporation//Zoho CRM Bulk Read Simulator//EN\r\n"
          "CALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n")
    for n, idx in enumerate(indices.tolist(), 1):
        rec = dataset.record("Events", idx)
        uid = f"{rec['id']}@zohocrm.simulator"
        start, end = int(rec["Start_DateTime"]), int(rec["End_DateTime"])  # type: ignore[call-overload]
        common = [f"DTSTAMP:{utc(int(rec['Modified_Time']))}",  # type: ignore[call-overload]
                  f"CREATED:{utc(int(rec['Created_Time']))}",  # type: ignore[call-overload]
                  f"LAST-MODIFIED:{utc(int(rec['Modified_Time']))}"]  # type: ignore[call-overload]
        lines = ["BEGIN:VEVENT", f"UID:{uid}", *common, f"DTSTART:{utc(start)}", f"DTEND:{utc(end)}",
                 f"SUMMARY:{ics_escape(str(rec['Event_Title']))}"]
        if rec["Venue"]:
            lines.append(f"LOCATION:{ics_escape(str(rec['Venue']))}")
        if rec["Description"]:
            lines.append(f"DESCRIPTION:{ics_escape(str(rec['Description']))}")
        if rec["Recurring_Activity"]:
            lines.append(f"RRULE:{rec['Recurring_Activity']}")
        lines.append("END:VEVENT")
        if rec["Recurring_Activity"] and has_edited_occurrence(idx):
            original = start + 7 * 86400  # the second weekly occurrence, moved by one hour
            lines += ["BEGIN:VEVENT", f"UID:{uid}", *common, f"RECURRENCE-ID:{utc(original)}",
                      f"DTSTART:{utc(original + 3600)}", f"DTEND:{utc(original + 3600 + end - start)}",
                      f"SUMMARY:{ics_escape(str(rec['Event_Title']) + ' (moved)')}", "END:VEVENT"]
        write("".join(ics_fold(line) for line in lines))
        if n % FLUSH_ROWS == 0:
            sink.flush()
    write("END:VCALENDAR\r\n")
    return len(indices)
