"""File handling: safe archive extraction, atomic writes, digests."""
