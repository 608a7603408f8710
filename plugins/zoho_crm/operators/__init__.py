"""Zoho CRM operators."""
