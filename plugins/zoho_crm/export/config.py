"""The deployment's export settings (``include/config/zoho_crm_exports.json``): custom modules, pool, connection
and the scheduled exports. The DAG files say where the file is; nothing in the package guesses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_export_config(path: Path) -> dict[str, Any]:
    """Read the export settings at ``path``; a missing or malformed file fails with what to fix.

    :param path: the JSON file (``custom_modules``, ``pool``, ``zoho_conn_id``, ``exports``).
    """
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise FileNotFoundError(f"export settings {path} cannot be read ({err.strerror}): restore the file") from None
    except ValueError as err:
        raise ValueError(f"export settings {path} are not valid JSON ({err}): fix the file") from None
    missing = [key for key in ("custom_modules", "pool", "zoho_conn_id", "exports") if key not in config]
    if missing:
        raise ValueError(f"export settings {path} lack {', '.join(missing)}: add them (see the README, 'Scheduled exports')")
    return config
