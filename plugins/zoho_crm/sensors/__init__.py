"""Zoho CRM sensors."""
