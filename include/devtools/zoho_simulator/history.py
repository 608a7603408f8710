"""Records over simulated time: versions (edits), deletions, restores and added fields, all from the seed.

A record exists from its ``Created_Time``; at a moment ``now`` it shows its latest version: as created (Modified_Time
= Created_Time) before its base ``Modified_Time``, the base version from then on, then each edit (a random one from
``changes_per_day``, or one a test scheduled) as its time passes. A deleted record is hidden from its deletion time
until it is restored (a restore is a new version: Modified_Time = the restore time). Edits while a record is in the
recycle bin do not happen. Everything is a function of (seed, module, index, settings, scheduled events, now).
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .data import Dataset, FieldSpec

RANDOM_EDITS = 6
"""Random edits per record at most (enough for any test horizon at sane rates)."""
NEVER = np.int64(1) << np.int64(62)
EDIT_TOUCH = 0.5
"""Share of a record's editable fields a random edit changes (a scheduled edit changes all of them)."""
IMMUTABLE = {"id", "Created_By", "Created_Time", "Modified_Time"}


@dataclass
class Events:
    """What tests scheduled: per module, per record index."""

    edits: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    deletions: dict[str, dict[int, tuple[int, bool]]] = field(default_factory=dict)
    """(deleted at, permanently) per record; replaces the record's random deletion."""
    restores: dict[str, dict[int, int]] = field(default_factory=dict)
    added_fields: dict[str, list[tuple[FieldSpec, int]]] = field(default_factory=dict)
    """Fields added to a module's metadata and CSV columns from a moment (epoch seconds)."""

    def empty(self) -> bool:
        return not (self.edits or self.deletions or self.restores or self.added_fields)

    def copy(self) -> Events:
        return deepcopy(self)


@dataclass
class Versions:
    """The visible state at ``now`` of some records (arrays aligned with their indices)."""

    created: np.ndarray
    modified: np.ndarray
    live: np.ndarray
    edits: list[tuple[np.ndarray, int, float]]
    """(time if the edit is visible else NEVER, edit number, share of fields it touches)."""

    @classmethod
    def static(cls, created: np.ndarray, modified: np.ndarray) -> Versions:
        return cls(created, modified, np.ones(len(created), dtype=bool), [])


@dataclass
class Deletions:
    """Deletion history of some records: deleted at (NEVER: not deleted), permanently, restored at (NEVER: not)."""

    deleted: np.ndarray
    permanent: np.ndarray
    restored: np.ndarray


def _lookup(events: dict[int, object], idx: np.ndarray) -> tuple[np.ndarray, list[object]]:
    """Positions in ``idx`` of the records that have an entry, and the entries."""
    if not events:
        return np.zeros(0, dtype=np.int64), []
    keys = np.fromiter(events, dtype=np.int64, count=len(events))
    pos = np.nonzero(np.isin(idx, keys))[0]
    return pos, [events[int(i)] for i in idx[pos]]


def deletions(ds: Dataset, module: str, idx: np.ndarray, base: np.ndarray) -> Deletions:
    n = len(idx)
    deleted = np.full(n, NEVER, dtype=np.int64)
    permanent = np.zeros(n, dtype=bool)
    restored = np.full(n, NEVER, dtype=np.int64)
    if ds.deletions_per_day > 0:
        rate = ds.deletions_per_day / 86400.0
        deleted = base + 1 + (-np.log1p(-ds.uniform(module, "deleted", idx)) / rate).astype(np.int64)
        permanent = ds.uniform(module, "deleted:permanent", idx) < ds.permanent_share
        back = ~permanent & (ds.uniform(module, "deleted:restored", idx) < ds.restore_share)
        delay = 1 + (ds.uniform(module, "deleted:restore_delay", idx) * ds.retention_seconds * 0.9).astype(np.int64)
        restored = np.where(back, deleted + delay, NEVER)
    pos, entries = _lookup(ds.events.deletions.get(module, {}), idx)  # type: ignore[arg-type]
    for p, (at, perm) in zip(pos.tolist(), entries, strict=True):  # type: ignore[misc]
        deleted[p], permanent[p], restored[p] = at, perm, NEVER
    pos, entries = _lookup(ds.events.restores.get(module, {}), idx)  # type: ignore[arg-type]
    for p, at in zip(pos.tolist(), entries, strict=True):
        restored[p] = at
    return Deletions(deleted, permanent, restored)


def versions(ds: Dataset, module: str, idx: np.ndarray, created: np.ndarray, base: np.ndarray) -> Versions:
    now = ds.now
    gone = deletions(ds, module, idx, base)
    in_bin_or_gone = gone.deleted <= now
    live = (created <= now) & ~(in_bin_or_gone & (now < gone.restored))

    def visible(t: np.ndarray) -> np.ndarray:
        ok = (t <= now) & ~((t >= gone.deleted) & (t < gone.restored))
        return np.where(ok, t, NEVER)

    edits: list[tuple[np.ndarray, int, float]] = []
    if ds.changes_per_day > 0:
        rate = ds.changes_per_day / 86400.0
        t = base.copy()
        for j in range(1, RANDOM_EDITS + 1):
            t = t + 1 + (-np.log1p(-ds.uniform(module, f"edit{j}", idx)) / rate).astype(np.int64)
            edits.append((visible(t), j, EDIT_TOUCH))
    pos, entries = _lookup(ds.events.edits.get(module, {}), idx)  # type: ignore[arg-type]
    most = max((len(e) for e in entries), default=0)  # type: ignore[arg-type]
    for k in range(most):
        t = np.full(len(idx), NEVER, dtype=np.int64)
        for p, times in zip(pos.tolist(), entries, strict=True):
            if k < len(times):  # type: ignore[arg-type]
                t[p] = times[k]  # type: ignore[index]
        edits.append((visible(t), RANDOM_EDITS + 1 + k, 1.0))
    modified = np.where(base <= now, base, created)
    for t, _, _ in edits:
        modified = np.where(t != NEVER, np.maximum(modified, t), modified)
    back = gone.restored <= now
    modified = np.where(back, np.maximum(modified, gone.restored), modified)
    return Versions(created, modified, live, edits)


def field_generation(ds: Dataset, module: str, f: FieldSpec, idx: np.ndarray, v: Versions) -> np.ndarray:
    """Per record, the number of the latest visible edit that changed field ``f`` (0: the base value)."""
    gen = np.zeros(len(idx), dtype=np.int64)
    if f.api_name in IMMUTABLE or f.data_type == "autonumber" or not v.edits:
        return gen
    best = np.full(len(idx), -1, dtype=np.int64)
    for t, number, share in v.edits:
        touched = t != NEVER
        if share < 1.0:
            touched &= ds.uniform(module, f"{f.api_name}:edit{number}", idx) < share
        newer = touched & (t > best)
        gen = np.where(newer, number, gen)
        best = np.where(newer, t, best)
    return gen
