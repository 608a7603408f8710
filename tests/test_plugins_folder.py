"""Airflow's plugin loader must not execute zoho_crm's files as top-level modules (it names them by file stem)."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_plugin_loader_skips_the_zoho_crm_package_and_imports_still_work(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory\n"
        "plugins, errors = _load_plugins_from_plugin_directory('plugins')\n"
        "assert not errors, errors\n"
        "import zoho_crm.export.dag\n"
        "assert hasattr(sys.modules['zoho_crm'], '__path__'), 'zoho_crm was shadowed by a module'\n"
        "print('ok', len(plugins))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
        env={"PYTHONPATH": f"{REPO_ROOT / 'plugins'}:{REPO_ROOT}", "AIRFLOW_HOME": str(tmp_path),
             "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "ok 0"
