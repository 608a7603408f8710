"""extract_page: one safe member streamed into place; hostile or broken archives refused, nothing written."""

from __future__ import annotations

import hashlib
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from tests.validation.builders import (
    JOB_ID,
    good_csv,
    page_zip,
    set_central_sizes,
    set_encrypted_flag,
    write_file,
    write_zip,
)
from zoho_crm.files.archive import CorruptArchiveError, UnsafeArchiveError, extract_page


def extract(zip_path: Path, dest: Path, file_type: str = "csv", **caps):
    return extract_page(zip_path, dest, job_id=JOB_ID, file_type=file_type, **caps)


def assert_nothing_written(dest: Path) -> None:
    assert not dest.exists() or list(dest.iterdir()) == []


def test_extracts_the_member_with_size_and_sha256(tmp_path):
    data = good_csv(5)
    page = extract(page_zip(tmp_path, data), tmp_path / "out")
    assert page.path == tmp_path / "out" / f"{JOB_ID}.csv"
    assert page.path.read_bytes() == data
    assert (page.member_name, page.size) == (f"{JOB_ID}.csv", len(data))
    assert page.sha256 == hashlib.sha256(data).hexdigest()
    assert page.warnings == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{JOB_ID}.csv"]


def test_other_member_name_is_only_a_warning(tmp_path):
    page = extract(page_zip(tmp_path, good_csv(), member="export.csv"), tmp_path / "out")
    assert page.path.name == "export.csv"
    assert page.warnings == [f"member is named 'export.csv', expected '{JOB_ID}.csv'"]


def test_member_in_a_folder_lands_under_its_basename(tmp_path):
    page = extract(page_zip(tmp_path, good_csv(), member=f"data/{JOB_ID}.csv"), tmp_path / "out")
    assert page.path == tmp_path / "out" / f"{JOB_ID}.csv"


def symlink_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../x.csv", b"id\n1\n")], "path traversal"),
        ([("a/../../x.csv", b"id\n1\n")], "path traversal"),
        ([("/etc/x.csv", b"id\n1\n")], "absolute path"),
        ([(symlink_member(f"{JOB_ID}.csv"), b"/etc/passwd")], "symbolic link"),
        ([(f"{JOB_ID}.csv", b"id\n1\n"), ("other.csv", b"id\n2\n")], "expected exactly one member, found 2"),
        ([], "expected exactly one member, found 0"),
        ([(f"{JOB_ID}.ics", b"BEGIN:VCALENDAR\n")], "wrong extension for file_type 'csv'"),
        ([(f"{JOB_ID}/", b"")], "a directory, not a file"),
    ],
    ids=["traversal", "nested-traversal", "absolute", "symlink", "two-members", "empty", "wrong-extension",
         "directory"],
)
def test_unsafe_archives_are_refused(tmp_path, members, message):
    zip_path = write_zip(tmp_path / "page.zip", members)
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(zip_path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_encrypted_member_is_refused(tmp_path):
    zip_path = page_zip(tmp_path, good_csv())
    set_encrypted_flag(zip_path)
    with pytest.raises(UnsafeArchiveError, match="encrypted"):
        extract(zip_path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_compression_bomb_is_refused(tmp_path):
    zip_path = page_zip(tmp_path, b"id\n" + b"0" * (20 * 2**20))
    with pytest.raises(UnsafeArchiveError, match=r"compression ratio \d+ exceeds 200 \(zip bomb\?\)"):
        extract(zip_path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_member_larger_than_declared_is_refused(tmp_path):
    # The central directory claims a small size (so the declared checks pass); zipfile stops at the declared
    # size and the CRC of the short read fails: refused as corrupt, nothing written.
    zip_path = page_zip(tmp_path, b"id\n" + b"0" * (20 * 2**20))
    set_central_sizes(zip_path, file_size=1000)
    with pytest.raises(CorruptArchiveError, match="Bad CRC-32"):
        extract(zip_path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_declared_size_over_the_cap_is_refused(tmp_path):
    zip_path = page_zip(tmp_path, good_csv(50))
    with pytest.raises(UnsafeArchiveError, match=r"declared size \d+ bytes exceeds the cap of 1000 bytes"):
        extract(zip_path, tmp_path / "out", max_member_bytes=1000)
    assert_nothing_written(tmp_path / "out")


def test_truncated_archive_is_corrupt(tmp_path):
    zip_path = page_zip(tmp_path, good_csv(200))
    zip_path.write_bytes(zip_path.read_bytes()[:-60])
    with pytest.raises(CorruptArchiveError, match="corrupt or truncated zip"):
        extract(zip_path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_truncated_member_data_is_corrupt(tmp_path):
    zip_path = page_zip(tmp_path, good_csv(2000))
    whole = zip_path.read_bytes()
    central = whole.index(b"PK\x01\x02")
    # Keep the central directory but cut compressed data out of the middle of the member.
    zip_path.write_bytes(whole[:200] + whole[central - 10 :])
    with pytest.raises(CorruptArchiveError):
        extract(zip_path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_crc_mismatch_is_corrupt(tmp_path):
    zip_path = write_zip(tmp_path / "page.zip", [(f"{JOB_ID}.csv", good_csv())], zipfile.ZIP_STORED)
    data = bytearray(zip_path.read_bytes())
    at = data.index(b"Last_Name")
    data[at] = ord("X")
    zip_path.write_bytes(bytes(data))
    with pytest.raises(CorruptArchiveError, match="Bad CRC-32"):
        extract(zip_path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_not_a_zip_is_corrupt(tmp_path):
    path = write_file(tmp_path, "page.zip", b'{"code": "INTERNAL_ERROR"}')
    with pytest.raises(CorruptArchiveError, match="corrupt or truncated zip"):
        extract(path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_existing_file_is_kept_when_extraction_fails(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{JOB_ID}.csv").write_bytes(b"previous")
    zip_path = page_zip(tmp_path, good_csv())
    set_encrypted_flag(zip_path)
    with pytest.raises(UnsafeArchiveError):
        extract(zip_path, out)
    assert [p.name for p in out.iterdir()] == [f"{JOB_ID}.csv"]
    assert (out / f"{JOB_ID}.csv").read_bytes() == b"previous"


def test_unknown_file_type_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="file_type must be one of"):
        extract(page_zip(tmp_path, good_csv()), tmp_path / "out", file_type="json")


def _many_members_zip(path: Path, members: int) -> Path:
    """A real zip (written by zipfile) of ``members`` empty CSV members; past 65,535 it needs zip64 records."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for n in range(members):
            archive.writestr(f"{n}.csv", b"")
    return path


def test_a_central_directory_of_150000_members_is_refused_before_it_is_parsed(tmp_path):
    """zipfile.ZipFile would build 150,000 ZipInfo objects (about 140 MB) before the one-member check could run;
    the count is read from the zip64 end-of-central-directory record instead."""
    zip_path = _many_members_zip(tmp_path / "page.zip", 150_000)
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchiveError, match="expected exactly one member, found 150000"):
            extract(zip_path, tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**10, f"refusing the archive allocated {peak / 2**20:.1f} MiB: the directory was parsed"
    assert_nothing_written(tmp_path / "out")


def test_a_central_directory_larger_than_its_declared_one_member_is_refused(tmp_path):
    """zipfile reads as many entries as the directory's size holds, whatever the count says."""
    zip_path = _many_members_zip(tmp_path / "page.zip", 5_000)
    data = bytearray(zip_path.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    data[end + 8 : end + 12] = (1).to_bytes(2, "little") * 2  # entries on this disk, entries in total
    zip_path.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match="central directory is .* bytes, more than 1 member.s. can take"):
        extract(zip_path, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")
