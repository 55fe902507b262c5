"""Small SQL helpers: identifier and literal quoting, column-type classes.

Column names in user files contain quotes, spaces, SQL keywords and non-ASCII letters, so every
identifier that reaches SQL goes through ``qi`` and every value through ``ql``.
"""

from __future__ import annotations

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL")
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


def qi(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def ql(value: str) -> str:
    """Quote an SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def is_numeric_type(duck_type: str) -> bool:
    t = str(duck_type).upper()
    return t in NUMERIC_TYPES or t.startswith("DECIMAL")


INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}


def is_integer_type(duck_type: str) -> bool:
    return str(duck_type).upper() in INTEGER_TYPES


def is_boolean_type(duck_type: str) -> bool:
    return str(duck_type).upper() == "BOOLEAN"
