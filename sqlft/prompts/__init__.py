"""The prompt format: records (system, schema, turns), chat templates and their stop markers, and reading the SQL
back out of a model's reply."""
