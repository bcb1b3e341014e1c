"""wrkr's benchmarks: `python -m bench [core|rabbitmq|postgres|mongodb ...]` (see README.md)."""
