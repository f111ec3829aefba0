"""The model-free SQL runtime: dialects and SQL text, schema (DDL) reading, statement splitting, databases and the
engine rule, sandboxes (DuckDB, SQLite, PostgreSQL), synthesized databases, result comparison, repair and voting.
It knows no model and no prompt."""
