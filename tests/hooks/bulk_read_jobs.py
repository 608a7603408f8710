"""Test helpers: Bulk Read jobs on the simulator, and the result a completed job of its Leads must give."""

from __future__ import annotations

from typing import Any

from zoho_crm.api.query import build_bulk_read_body
from zoho_crm.hooks.zoho_crm import ZohoCRMHook


def new_job(module: str = "Leads", **kwargs: Any) -> str:
    """Create a Bulk Read job with the default connection; its id.

    :param module: the module to export.
    :param kwargs: the other arguments of :func:`~zoho_crm.api.query.build_bulk_read_body`.
    """
    return ZohoCRMHook().create_bulk_read_job(build_bulk_read_body(module, **kwargs))["id"]


def completed_leads_result(job_id: str) -> dict[str, Any]:
    """The job result of a completed export of the simulator's 300 Leads: one page, on API v8.

    :param job_id: the job's id.
    """
    return {
        "job_id": job_id,
        "module": "Leads",
        "file_type": "csv",
        "page": 1,
        "count": 300,
        "per_page": 200000,
        "more_records": False,
        "next_page_token": None,
        "download_url": f"/crm/bulk/v8/read/{job_id}/result",
    }
