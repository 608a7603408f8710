"""Safe extraction of the single member of a Bulk Read result zip.

The member is streamed to a temporary file in the destination directory and renamed into place only when
it is complete and its CRC checked, so nothing is left behind on any error and memory stays flat.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from zoho_crm.api.query import FILE_TYPES, data_file_name
from zoho_crm.files.atomic import create_temp

CHUNK_BYTES = 256 << 10
# Tiny members compress extremely well without being dangerous; ratios are judged past this size.
RATIO_MIN_BYTES = 1 << 20
# One central directory entry: a 46-byte header plus name, extra field and comment of at most 65,535 bytes each.
MAX_ENTRY_BYTES = 46 + 3 * 0xFFFF
# Up to this many members zipfile may read the directory, so the refusal can name them; more are refused unread.
MAX_PARSED_MEMBERS = 16


class ArchiveError(Exception):
    """The result archive cannot be used."""


class UnsafeArchiveError(ArchiveError):
    """The archive is refused for safety: bad names, links, encryption, size or ratio, member count, type."""


class CorruptArchiveError(ArchiveError):
    """The archive is unreadable: not a zip, truncated, or failing its CRC."""


@dataclass
class ExtractedPage:
    """The extracted member: final path, name inside the zip, size in bytes, SHA-256, warnings."""

    path: Path
    member_name: str
    size: int
    sha256: str
    warnings: list[str] = field(default_factory=list)


def extract_page(
    zip_path: Path,
    dest_dir: Path,
    *,
    job_id: str | None,
    file_type: str,
    max_member_bytes: int = 4 * 2**30,
    max_ratio: float = 200.0,
    on_chunk: Callable[[bytes], None] | None = None,
) -> ExtractedPage:
    """Extract the only member of ``zip_path`` to ``dest_dir/<member basename>`` after safety checks.

    ``on_chunk`` receives each extracted chunk in order (to validate while extracting); the data is only
    trustworthy once this function returns (the CRC is checked at the end).
    """
    if file_type not in FILE_TYPES:
        raise ValueError(f"file_type must be one of {FILE_TYPES}, got {file_type!r}")
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    try:
        _check_central_directory(zip_path)
        with zipfile.ZipFile(zip_path) as archive:
            info = _check_member(archive, zip_path, file_type, max_member_bytes, max_ratio)
            warnings = []
            expected = data_file_name(job_id, file_type) if job_id is not None else ""
            if job_id is not None and info.filename != expected:
                warnings.append(f"member is named {info.filename!r}, expected {expected!r}")
            dest_dir.mkdir(parents=True, exist_ok=True)
            final = dest_dir / PurePosixPath(info.filename).name
            size, digest = _stream_member(archive, info, final, max_member_bytes, max_ratio, zip_path, on_chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error, struct.error) as exc:
        raise CorruptArchiveError(
            f"{zip_path}: corrupt or truncated zip ({exc}); download the page again"
        ) from exc
    except NotImplementedError as exc:
        raise UnsafeArchiveError(f"{zip_path}: unsupported zip feature ({exc})") from exc
    return ExtractedPage(final, info.filename, size, digest, warnings)


def _check_central_directory(zip_path: Path) -> None:
    """Refuse many members, or a central directory larger than its members need, before ``zipfile`` reads it.

    ``zipfile.ZipFile`` builds a ``ZipInfo`` for every entry of the central directory (150,000 entries: about
    80 MB allocated), reading as many bytes as the end-of-central-directory record declares whatever its count.
    This reads only that record (zip64 too), with the very function ``zipfile`` uses, so both see the same one.
    """
    with open(zip_path, "rb") as fp:
        endrec = zipfile._EndRecData(fp)  # the record ZipFile itself will use; reads a few KiB at most
    if not endrec:
        raise zipfile.BadZipFile("no end of central directory record (not a zip file)")
    entries, size = endrec[zipfile._ECD_ENTRIES_TOTAL], endrec[zipfile._ECD_SIZE]
    if entries > MAX_PARSED_MEMBERS:
        raise UnsafeArchiveError(
            f"{zip_path}: expected exactly one member, found {entries} (counted from the end of central "
            "directory record, the directory was not read); a Bulk Read result holds one file"
        )
    if size > max(entries, 1) * MAX_ENTRY_BYTES:
        raise UnsafeArchiveError(
            f"{zip_path}: the central directory is {size} bytes, more than {entries} member(s) can take "
            f"({max(entries, 1) * MAX_ENTRY_BYTES}): the archive hides more members than it declares; "
            "a Bulk Read result holds one file"
        )


def _check_member(
    archive: zipfile.ZipFile, zip_path: Path, file_type: str, max_member_bytes: int, max_ratio: float
) -> zipfile.ZipInfo:
    members = archive.infolist()
    if len(members) != 1:
        names = ", ".join(repr(m.filename) for m in members[:5]) or "none"
        raise UnsafeArchiveError(
            f"{zip_path}: expected exactly one member, found {len(members)} ({names}); "
            "a Bulk Read result holds one file"
        )
    info = members[0]
    name = info.filename
    refuse = f"{zip_path}: member {name!r} refused: "
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(refuse + "absolute path")
    if ".." in parts:
        raise UnsafeArchiveError(refuse + "path traversal ('..' component)")
    if info.is_dir() or not parts[-1]:
        raise UnsafeArchiveError(refuse + "a directory, not a file")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(refuse + "a symbolic link")
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        raise UnsafeArchiveError(refuse + f"not a regular file (mode {oct(mode)})")
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(refuse + "encrypted")
    if PurePosixPath(parts[-1]).suffix.lower() != f".{file_type}":
        raise UnsafeArchiveError(refuse + f"wrong extension for file_type {file_type!r} (expected .{file_type})")
    if info.file_size > max_member_bytes:
        raise UnsafeArchiveError(
            refuse + f"declared size {info.file_size} bytes exceeds the cap of {max_member_bytes} bytes"
        )
    if info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
        raise UnsafeArchiveError(
            refuse + f"compression ratio {info.file_size / max(info.compress_size, 1):.0f} exceeds "
            f"{max_ratio:.0f} (zip bomb?)"
        )
    return info


def _open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    try:
        return archive.open(info)
    except OSError as exc:  # the member's offset points outside the file
        raise zipfile.BadZipFile(f"member header unreadable: {exc}") from exc


def _stream_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    final: Path,
    max_member_bytes: int,
    max_ratio: float,
    zip_path: Path,
    on_chunk: Callable[[bytes], None] | None,
) -> tuple[int, str]:
    """Copy the member to a temp file beside ``final`` enforcing caps while streaming; rename on success."""
    ratio_cap = max(RATIO_MIN_BYTES, max_ratio * max(info.compress_size, 1))
    digest = hashlib.sha256()
    size = 0
    fd, tmp = create_temp(final.parent, prefix=f".{final.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, _open_member(archive, info) as member:
            while chunk := member.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_member_bytes:
                    raise UnsafeArchiveError(
                        f"{zip_path}: member {info.filename!r} refused: more than {max_member_bytes} bytes when extracted"
                    )
                if size > ratio_cap:
                    raise UnsafeArchiveError(
                        f"{zip_path}: member {info.filename!r} refused: expands past {max_ratio:.0f} times its "
                        "compressed size (zip bomb?)"
                    )
                digest.update(chunk)
                out.write(chunk)
                if on_chunk:
                    on_chunk(chunk)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()
