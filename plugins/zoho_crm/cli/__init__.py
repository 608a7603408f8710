"""Command-line tools of the provider (``python -m zoho_crm.cli.validate``)."""
