"""Write files so that readers see the old content or the new one, never a half-written file."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def create_temp(directory: str | Path, prefix: str, suffix: str = "") -> tuple[int, str]:
    """Create a new file for writing in ``directory`` (like ``tempfile.mkstemp``) and return (fd, path).

    Unlike mkstemp's 0600, the file gets the usual permissions (0666 less the umask): the published export is
    read by other users and tools.
    """
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")


def fsync_path(path: str | Path) -> None:
    """Flush a file or a directory (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(
    path: str | Path, payload: Any, *, temp_dir: str | Path | None = None, durable: bool = False
) -> Path:
    """Write ``payload`` as JSON to a temporary file, then rename it into place over ``path``.

    The temporary file is created beside ``path``, or in ``temp_dir`` (same file system) so that no temporary
    file ever appears in a published directory. ``durable`` flushes the file before the rename and the
    directory after it, so the new content survives a crash once this returns.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if temp_dir is not None:
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(temp_dir or path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False, default=str)
            handle.write("\n")
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)
    return path
