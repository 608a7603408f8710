"""Record ids of a page, kept compactly while streaming, and their repeats found at the end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zoho_crm.validation.id_index import escape, write_sorted, write_sorted_numbers

_ZOHO_ID = r"^[1-9][0-9]{0,18}$"
INITIAL_CAPACITY = 1 << 18  # 2 MiB of int64: a full 200,000-record page without growing


def _int64_values(array: pa.Array) -> np.ndarray:
    """A numpy view of a null-free int64 array (``to_numpy`` would import pandas, tens of MB)."""
    return np.frombuffer(array.buffers()[1], np.int64, len(array), array.offset * 8)


class IdCollector:
    """Collects ids compactly (int64 while they are plain Zoho numbers) and finds repeats at the end."""

    def __init__(self) -> None:
        self.numbers = np.empty(INITIAL_CAPACITY, np.int64)  # grows by doubling; filled up to self.count
        self.count = 0
        self.texts: list[pa.ChunkedArray] | None = None

    def add(self, column: pa.ChunkedArray) -> bool:
        """Keep the ids of one piece; True when all were plain Zoho numbers (so none is empty)."""
        if self.texts is None and pa.types.is_string(column.type):
            if pc.all(pc.match_substring_regex(column, _ZOHO_ID)).as_py():
                try:
                    self._append(_int64_values(pc.cast(column, pa.int64()).combine_chunks()))
                    return True
                except pa.ArrowInvalid:  # beyond int64: keep them as text
                    pass
        if self.texts is None:
            self.texts = [pa.chunked_array([pa.array([b"%d" % n for n in self.numbers[: self.count]], pa.binary())])]
            self.numbers, self.count = np.empty(0, np.int64), 0
        self.texts.append(column.cast(pa.binary()))
        return False

    def _append(self, values: np.ndarray) -> None:
        end = self.count + len(values)
        if end > len(self.numbers):
            grown = np.empty(max(end, 2 * len(self.numbers)), np.int64)
            grown[: self.count] = self.numbers[: self.count]
            self.numbers = grown
        self.numbers[self.count : end] = values
        self.count = end

    def write_index(self, path: Path) -> None:
        """Write every non-empty id, escaped and sorted by bytes, to ``path`` (the page's id index)."""
        if self.texts is None:
            write_sorted_numbers(path, self.numbers[: self.count])
            return
        values = (value for texts in self.texts for chunk in texts.chunks for value in chunk.to_pylist())
        write_sorted(path, (escape(value) for value in values if value))

    def duplicates(self, limit: int = 1000) -> tuple[set[bytes], int]:
        """Up to ``limit`` repeated non-empty ids and the number of extra occurrences overall."""
        if self.texts is None:
            values = self.numbers[: self.count]
            values.sort()  # in place
            repeated = values[1:][values[1:] == values[:-1]]
            return {b"%d" % v for v in np.unique(repeated)[:limit]}, int(repeated.size)
        chunks = [chunk for texts in self.texts for chunk in texts.chunks]
        self.texts = []
        counts = pc.value_counts(pa.chunked_array(chunks, pa.binary()))
        keep = pc.and_(pc.greater(counts.field("counts"), 1), pc.not_equal(counts.field("values"), b""))
        repeated = counts.filter(keep)
        extra = (pc.sum(repeated.field("counts")).as_py() or 0) - len(repeated)
        return set(repeated.field("values")[:limit].to_pylist()), extra
