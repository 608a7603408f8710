"""Zoho CRM triggers (run in the triggerer, async only)."""
