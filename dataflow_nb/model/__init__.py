"""Models: type hints to columns (``spec.py``), migrations, inference from files.

Kept free of imports: the CLI reads ``SAMPLE_ROWS`` for its ``--help`` without loading Arrow.
"""

# Rows ``model_from`` takes a file's types from, as DuckDB's sniffer samples a file (20,480 rows) and
# polars' reader (100): a later value that does not fit fails the load, naming the fix.
SAMPLE_ROWS = 100_000
