"""Tests of the unzip and validate library and its command line (issue 5)."""
