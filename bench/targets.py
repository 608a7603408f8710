"""The verdict every benchmark ends on: each missed target named, then whether all were met."""

from __future__ import annotations

import sys


def verdict(failures: list[str]) -> int:
    """Print each missed target (on stderr) and the verdict; the benchmark's exit code (1 when one was missed).

    :param failures: the targets missed, each saying by how much.
    """
    for failure in failures:
        print(f"MISSED: {failure}", file=sys.stderr)
    print("targets met" if not failures else "targets MISSED")
    return 1 if failures else 0
