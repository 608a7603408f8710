"""Command line: extract and validate one Bulk Read result zip.

    python -m zoho_crm.cli.validate FILE.zip --file-type csv|ics [--fields A,B] [--fields-metadata FILE.json]
        [--expected-count N] [--job-id ID] [--output-dir DIR] [--part-of-export]

Prints the JSON report on stdout, one line per problem on stderr. Exit 0 valid, 1 invalid, 2 unreadable or
unsafe archive.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from zoho_crm.api.query import FILE_TYPES
from zoho_crm.files.archive import ArchiveError
from zoho_crm.validation import validate_page

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m zoho_crm.cli.validate", description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path, help="the downloaded result zip")
    parser.add_argument("--file-type", required=True, choices=FILE_TYPES)
    parser.add_argument("--fields", default="", help="comma-separated field API names the job asked for")
    parser.add_argument("--fields-metadata", type=Path, help="settings/fields answer ({'fields': [...]}) or a list")
    parser.add_argument("--expected-count", type=int, help="the job's reported record count")
    parser.add_argument("--job-id", help="the job id (the member should be named <job id>.<file type>)")
    parser.add_argument("--output-dir", type=Path, help="where to extract (default: a new temp dir beside the zip)")
    parser.add_argument("--part-of-export", action="store_true",
                        help="ICS: the file is one page of a larger export or of a time-range (criteria) export, "
                             "so an override (RECURRENCE-ID) without its series in the file is a warning, not an "
                             "error")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    metadata = None
    if args.fields_metadata:
        try:
            metadata = json.loads(args.fields_metadata.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"error: {args.fields_metadata}: cannot read field metadata JSON: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    if not args.zip.is_file():
        print(f"error: {args.zip}: no such file", file=sys.stderr)
        return EXIT_UNREADABLE
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix=f"{args.zip.stem}.", dir=args.zip.parent))
    fields = [name.strip() for name in args.fields.split(",") if name.strip()]
    try:
        report = validate_page(args.zip, output_dir, job_id=args.job_id, file_type=args.file_type,
                               fields=fields or None, field_metadata=metadata, expected_count=args.expected_count,
                               orphan_overrides="warning" if args.part_of_export else "error")
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    for problem in report.errors:
        print(f"error: {problem}", file=sys.stderr)
    for problem in report.warnings:
        print(f"warning: {problem}", file=sys.stderr)
    return EXIT_VALID if report.valid else EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
