"""Zoho CRM Bulk Read export: provider-shaped runtime code (importable without Airflow where possible)."""
