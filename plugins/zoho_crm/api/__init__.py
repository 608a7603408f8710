"""Zoho CRM API pieces with no Airflow in them: errors, modules, Bulk Read query bodies."""
