"""Zoho CRM hook, connection config and shared OAuth token cache."""
