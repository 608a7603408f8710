"""Checks across all pages of one export, run by the manifest step once every page is valid on its own.

- Record ids (CSV) and event UIDs (ICS, events without RECURRENCE-ID) must not repeat across pages: with
  page-number paging (v2-v6) a record leaving the range mid-export shifts the offsets and repeats a record
  (or skips one, which ids alone cannot show).
- An ICS override (RECURRENCE-ID) needs its series (same UID with RRULE) on some page of the export; without
  it this is an error in a full export and a warning in a partial one (time range, criteria or custom view),
  where the series may simply lie outside the range. One occurrence overridden on two pages is an error.

Each page's validation leaves sorted sidecars (see :mod:`zoho_crm.validation.id_index`) under
``<staging>/checks/``; they are merged here line by line, so memory does not grow with the export.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path, PurePosixPath
from typing import Any

from zoho_crm.validation.id_index import IDS, OVERRIDES, SERIES, index_path, unescape

CHECKS_SUBDIR = "checks"
SHOWN = 5
MAX_OPEN = 128  # sidecars merged at once; more pages are merged in rounds through temporary files


class ExportCheckError(Exception):
    """The pages are valid one by one but not together (the message names the first problems)."""


def page_index_prefix(page_file: Path, sha256: str) -> Path:
    """Where the validate step leaves a page's sidecars: ``<staging>/checks/<page dir>.<sha256[:16]>``.

    ``page_file`` is ``<staging>/export/<page dir>/<file>``; the digest ties the sidecars to the page's content.
    """
    return page_index_in(page_file.parent.parent.parent / CHECKS_SUBDIR, page_file.parent.name, sha256)


def page_index_in(checks_dir: Path, page_dir: str, sha256: str) -> Path:
    """A page's sidecar prefix in a checks folder: ``<checks_dir>/<page dir>.<sha256[:16]>``.

    :param checks_dir: the run's checks folder (``<staging>/checks``, or a local copy of it).
    :param page_dir: the page's folder name (``page_0001``).
    :param sha256: the page file's digest, which ties the sidecars to its content.
    """
    return checks_dir / f"{page_dir}.{sha256[:16]}"


def check_export(
    pages: list[dict[str, Any]],
    export_dir: Path | None,
    file_type: str,
    *,
    partial: bool,
    error: type[Exception] = ExportCheckError,
    checks_dir: Path | None = None,
    read_page: Callable[[str], AbstractContextManager[Path]] | None = None,
) -> list[str]:
    """Check the validated ``pages`` (dicts with ``page``, ``file`` relative to the staging area and ``sha256``)
    together; return warnings, raise ``error`` naming the first problems.

    A page without sidecars (validated by an older version) is indexed again from its file.

    :param pages: the validated pages.
    :param export_dir: the run's local staging area (the sidecars in its ``checks/``, the page files in it), or
        None with ``checks_dir`` and ``read_page`` (a store without local paths).
    :param file_type: ``csv`` or ``ics``.
    :param partial: the export has a time range, criteria or a custom view, so an override may lack its series.
    :param error: the exception to raise.
    :param checks_dir: the local checks folder (default: each page's, :func:`page_index_prefix`).
    :param read_page: a local copy of a page file by its ``file`` for a ``with`` block (default: under
        ``export_dir``).
    """
    if export_dir is None and (checks_dir is None or read_page is None):
        raise TypeError("check_export: without export_dir give checks_dir and read_page")
    reader = read_page or (lambda relative: nullcontext(export_dir / relative))

    def prefix_of(page: dict[str, Any]) -> Path:
        if checks_dir is None:
            return page_index_prefix(export_dir / page["file"], page["sha256"])
        return page_index_in(checks_dir, PurePosixPath(page["file"]).parent.name, page["sha256"])

    prefixes = [(int(page["page"]), _index(page, prefix_of(page), reader, file_type, error)) for page in pages]
    problems, warnings = [], []
    repeated = _repeats([(number, index_path(prefix, IDS)) for number, prefix in prefixes])
    if repeated:
        what = "event UIDs (without RECURRENCE-ID)" if file_type == "ics" else "record ids"
        problems.append(f"{repeated.total} {what} on more than one page ({_show(repeated)}): with page numbers "
                        "(API v2-v6) a record leaving the export's range mid-export shifts the pages; rerun the "
                        "export")
    if file_type == "ics":
        orphans, twice = _overrides(prefixes)
        if twice:
            problems.append(f"{twice.total} occurrence(s) overridden on more than one page ({_show(twice)}); "
                            "rerun the export")
        if orphans:
            text = (f"{orphans.total} override(s) (RECURRENCE-ID) whose series (VEVENT with RRULE) is on no page "
                    f"of the export ({_show(orphans)})")
            if partial:
                warnings.append(f"{text}: kept, the series lies outside the export's time range or criteria")
            else:
                problems.append(f"{text}: a full export must hold every series")
    if problems:
        raise error(f"the export's {len(pages)} pages are valid one by one but not together:\n  "
                    + "\n  ".join(problems))
    return warnings


def _index(page: dict[str, Any], prefix: Path, read_page: Callable[[str], AbstractContextManager[Path]],
           file_type: str, error: type[Exception]) -> Path:
    """The page's sidecar ``prefix``, writing the sidecars from the page file if they are missing."""
    kinds = (IDS, SERIES, OVERRIDES) if file_type == "ics" else (IDS,)
    if not all(index_path(prefix, kind).is_file() for kind in kinds):
        from zoho_crm.validation import validate_csv, validate_ics

        prefix.parent.mkdir(parents=True, exist_ok=True)
        with read_page(page["file"]) as page_file:
            if file_type == "ics":
                validate_ics(page_file, orphan_overrides="note", index_to=prefix)
            else:
                validate_csv(page_file, index_to=prefix)
        if not index_path(prefix, IDS).is_file():
            raise error(f"page {page['page']}: {page_file} has no id column to index")
    return prefix


class _Found:
    """Problems of one kind: how many, and the first few as text."""

    def __init__(self) -> None:
        self.total = 0
        self.examples: list[str] = []

    def add(self, text: str) -> None:
        self.total += 1
        if len(self.examples) < SHOWN:
            self.examples.append(text)

    def __bool__(self) -> bool:
        return bool(self.total)


def _show(found: _Found) -> str:
    more = found.total - len(found.examples)
    return "; ".join(found.examples) + (f"; and {more} more" if more > 0 else "")


def _pages(numbers: list[int]) -> str:
    return "pages " + ", ".join(map(str, sorted(set(numbers))))


def _repeats(files: list[tuple[int, Path]]) -> _Found:
    """Values on more than one of the sorted ``files`` (one per page), with the pages holding them."""
    found = _Found()
    with _merged(files) as lines:
        value, numbers = None, []
        for line, number in lines:
            if line != value:
                if len(numbers) > 1:
                    found.add(f"{unescape(value)} on {_pages(numbers)}")
                value, numbers = line, []
            numbers.append(number)
        if len(numbers) > 1:
            found.add(f"{unescape(value)} on {_pages(numbers)}")
    return found


def _overrides(prefixes: list[tuple[int, Path]]) -> tuple[_Found, _Found]:
    """(overrides whose series is on no page, occurrences overridden on more than one page)."""
    orphans, twice = _Found(), _Found()
    with (_merged([(n, index_path(p, OVERRIDES)) for n, p in prefixes]) as overrides,
          _merged([(n, index_path(p, SERIES)) for n, p in prefixes]) as series):
        uid_of_series = next(series, (None, 0))[0]
        previous, numbers = None, []
        for line, number in overrides:
            if line == previous:
                numbers.append(number)
                continue
            if len(numbers) > 1:
                twice.add(_override_text(previous, numbers))
            previous, numbers = line, [number]
            uid = line.partition(b"\t")[0]
            while uid_of_series is not None and uid_of_series < uid:
                uid_of_series = next(series, (None, 0))[0]
            if uid_of_series != uid:
                orphans.add(_override_text(line, numbers))
        if len(numbers) > 1:
            twice.add(_override_text(previous, numbers))
    return orphans, twice


def _override_text(line: bytes, numbers: list[int]) -> str:
    uid, _, recurrence = line.partition(b"\t")
    return f"UID {unescape(uid)} RECURRENCE-ID {unescape(recurrence)} on {_pages(numbers)}"


@contextmanager
def _merged(files: list[tuple[int, Path]]) -> Iterator[Iterator[tuple[bytes, int]]]:
    """(line without newline, page number) from sorted files, in order; over ``MAX_OPEN`` files in rounds
    through temporary files beside the sidecars."""
    with ExitStack() as stack:
        if len(files) <= MAX_OPEN:
            yield heapq.merge(*(_lines(stack, path, number) for number, path in files))
            return
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".merge-", dir=files[0][1].parent)))
        rounds = [_merge_to(tmp / f"round{i}", files[i : i + MAX_OPEN]) for i in range(0, len(files), MAX_OPEN)]
        yield heapq.merge(*(_tagged_lines(stack, path) for path in rounds))


def _merge_to(path: Path, files: list[tuple[int, Path]]) -> Path:
    """Merge up to ``MAX_OPEN`` sorted files into one, each line tagged with its page (``value<NUL><page>``)."""
    with _merged(files) as lines, open(path, "wb") as out:
        for line, number in lines:
            out.write(b"%s\x00%d\n" % (line, number))
    return path


def _lines(stack: ExitStack, path: Path, number: int) -> Iterator[tuple[bytes, int]]:
    handle = stack.enter_context(open(path, "rb"))
    return ((line[:-1], number) for line in handle)


def _tagged_lines(stack: ExitStack, path: Path) -> Iterator[tuple[bytes, int]]:
    handle = stack.enter_context(open(path, "rb"))
    for line in handle:
        value, _, number = line[:-1].rpartition(b"\x00")
        yield value, int(number)
