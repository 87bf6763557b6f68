"""mlacc's version (kept in step with pyproject.toml by test_packaging)."""

__version__ = "0.1.0"
