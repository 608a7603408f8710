"""Validation of Bulk Read pages (CSV and ICS) with a JSON report; pure library, no Airflow."""

from zoho_crm.validation.csv_page import validate_csv
from zoho_crm.validation.export_checks import ExportCheckError, check_export
from zoho_crm.validation.ics_page import validate_ics
from zoho_crm.validation.page import validate_page
from zoho_crm.validation.report import Problem, ValidationReport

__all__ = [
    "ExportCheckError", "Problem", "ValidationReport", "check_export", "validate_csv", "validate_ics", "validate_page",
]
