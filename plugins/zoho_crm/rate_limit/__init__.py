"""The download rate limit: window arithmetic and the shared ledger of download requests."""
