"""Zoho CRM Bulk Read export: provider-shaped runtime code (importable without Airflow where possible).

Also the installed Airflow provider ``airflow-provider-zoho-crm`` (root ``pyproject.toml``, installed editable):
``get_provider_info`` declares the ``zoho_crm`` connection type and its form.
"""
