"""Builders for the validation tests: zips (honest and hostile), CSV text and field metadata."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

JOB_ID = "5725767000000859031"

FIELDS = [
    {"api_name": "Last_Name", "data_type": "text"},
    {"api_name": "Email", "data_type": "email"},
    {"api_name": "Created_Time", "data_type": "datetime"},
    {"api_name": "Date_of_Birth", "data_type": "date"},
    {"api_name": "Annual_Revenue", "data_type": "currency"},
    {"api_name": "No_of_Employees", "data_type": "integer"},
    {"api_name": "Email_Opt_Out", "data_type": "boolean"},
    {"api_name": "Description", "data_type": "textarea"},
]
HEADER = ["Id"] + [f["api_name"] for f in FIELDS]


def good_row(n: int) -> list[str]:
    return [
        str(5725767000001000000 + n), f"Müller {n}", f"user{n}@example.com", "2026-11-01T10:15:00+05:30",
        "1980-02-29", "1234.50", "42", "true" if n % 2 else "false", f'line one, "quoted"\nline two {n}',
    ]


def csv_text(rows: list[list[str]], newline: str = "\r\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    return buffer.getvalue()


def good_csv(records: int = 3, newline: str = "\r\n", first: int = 1) -> bytes:
    """A valid page of ``records`` rows numbered from ``first`` (pages of one export need distinct numbers)."""
    return csv_text([HEADER] + [good_row(n) for n in range(first, first + records)], newline).encode()


def write_file(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def write_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]],
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data, compress_type=compression)
    return path


def page_zip(directory: Path, data: bytes, *, member: str = f"{JOB_ID}.csv") -> Path:
    return write_zip(directory / f"{JOB_ID}.zip", [(member, data)])


def set_encrypted_flag(path: Path) -> None:
    """Set the 'encrypted' bit in the local and central headers (zipfile never writes it)."""
    data = bytearray(path.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature)
        data[at + flag_offset] |= 0x1
    path.write_bytes(bytes(data))


def set_central_sizes(path: Path, *, file_size: int) -> None:
    """Make the central directory lie about the member's uncompressed size."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    data[at + 24 : at + 28] = file_size.to_bytes(4, "little")
    path.write_bytes(bytes(data))
