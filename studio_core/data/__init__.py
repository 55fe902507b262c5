"""Files into a DuckDB workspace: loading, the SQL sandbox, profiles, the split, the SQL dialect."""
