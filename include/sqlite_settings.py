"""Connect args for the embedded SQLite metadata database (demo, `make airflow`, tests).

SQLite allows one writer at a time; with a scheduler, triggerer, dag processor, api-server and CLI commands
writing at once, the default 5-second busy timeout makes some of them fail with "database is locked". Waiting
longer for the lock is the fix. Set through ``[database] sql_alchemy_connect_args`` (an import path).
"""

CONNECT_ARGS: dict[str, object] = {"timeout": 60}
