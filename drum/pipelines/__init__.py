"""End-to-end pipelines composed from the library (what ``drum demo`` and experiments run)."""
