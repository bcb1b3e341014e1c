"""Runnable examples: each works on the memory backend as is, and on a real one via WRKR_URL."""
