"""An S3-compatible server for the object-store tests: moto's standalone server, a real HTTP server process on a
free 127.0.0.1 port, reached through a real Airflow connection of type ``aws`` (an ``AIRFLOW_CONN_...`` variable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from include.devtools.airflow_stack import free_port

CONN_ID = "zoho_export_s3"
BUCKET = "zoho-exports"
START_SECONDS = 60


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint and the connection's environment variable.

    :param endpoint: ``http://127.0.0.1:<port>``.
    :param log: the server's output file.
    """

    endpoint: str
    log: Path

    @property
    def conn_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_ZOHO_EXPORT_S3``: an aws connection with moto's test keys and the endpoint."""
        conn = {"conn_type": "aws", "login": "testing", "password": "testing",
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"}}
        return {f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn)}

    def client(self):  # noqa: ANN201 - a boto3 S3 client
        """A plain boto3 client of the server (to look at the bucket behind the store's back)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in :data:`BUCKET`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    """Start moto's server, wait until it answers, create :data:`BUCKET`; stop the server afterwards.

    :param workdir: where the server's log goes.
    """
    port = free_port()
    log = workdir / "moto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
    server = S3Server(f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_up(server, process)
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(server: S3Server, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto's S3 server exited ({process.returncode}): {server.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.endpoint}/moto-api/data.json", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)  # polling for the port to open, bounded by the deadline
    raise RuntimeError(f"moto's S3 server did not answer within {START_SECONDS} s: {server.log.read_text()[-2000:]}")
