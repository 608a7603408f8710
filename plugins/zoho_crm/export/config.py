"""The deployment's export settings (``include/config/zoho_crm_exports.json``): custom modules, pool, connection,
the warehouse the exports are loaded into and the scheduled exports. ``$ZOHO_CRM_EXPORTS_CONFIG`` names the file, else
the DAG files' default beside ``dags/`` is used; nothing in the package guesses it."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from zoho_crm.export.load import DEFAULT_LOAD_LOOKBACK, check_deletion_mode

CONFIG_ENV = "ZOHO_CRM_EXPORTS_CONFIG"


def load_export_config(default: Path) -> dict[str, Any]:
    """Read the export settings (``$ZOHO_CRM_EXPORTS_CONFIG``, else ``default``); a missing or malformed file
    fails with what to fix.

    :param default: the JSON file used when the environment names none (``custom_modules``, ``pool``, ``zoho_conn_id``, ``exports``; optional
        ``warehouse_conn_id``, the Postgres connection the CSV exports are loaded into, null or absent for none,
        ``load_lookback_minutes``, the incremental runs' look-back, and ``deletion_mode``, mark or remove).
    """
    path = Path(os.environ.get(CONFIG_ENV) or default)
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise FileNotFoundError(
            f"export settings {path} cannot be read ({err.strerror}): restore the file or set {CONFIG_ENV} to its path"
        ) from None
    except ValueError as err:
        raise ValueError(f"export settings {path} are not valid JSON ({err}): fix the file") from None
    missing = [key for key in ("custom_modules", "pool", "zoho_conn_id", "exports") if key not in config]
    if missing:
        raise ValueError(f"export settings {path} lack {', '.join(missing)}: add them (see the README, 'Scheduled exports')")
    warehouse = config.setdefault("warehouse_conn_id", None)
    if warehouse is not None and (not isinstance(warehouse, str) or not warehouse.strip()):
        raise ValueError(f"export settings {path}: warehouse_conn_id must be a connection id or null, not {warehouse!r}")
    minutes = config.get("load_lookback_minutes", DEFAULT_LOAD_LOOKBACK.total_seconds() / 60)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not minutes >= 0:
        raise ValueError(f"export settings {path}: load_lookback_minutes must be a number of at least 0, not {minutes!r}")
    config["load_lookback"] = timedelta(minutes=minutes)
    try:
        config["deletion_mode"] = check_deletion_mode(config.get("deletion_mode", "mark"))
    except ValueError as err:
        raise ValueError(f"export settings {path}: {err}") from None
    return config
