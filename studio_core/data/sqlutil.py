"""The project's SQL dialect: identifier and literal quoting, column-type classes, and a
column's value as text (``text_expr``) or as a number (``number_expr``) the same way in
suggestion, validation, preprocessing and the raw-row ONNX graph.

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


def text_expr(column: str, duck_type: str) -> str:
    """SQL giving a column's value as text, the same for 9, 9.0 and '9' (so serving matches)."""
    c = qi(column)
    if is_integer_type(duck_type):  # digits, exact past 2^53 (the DOUBLE route prints the same text below it)
        return f"CAST({c} AS VARCHAR)"
    if is_numeric_type(duck_type):
        return f"regexp_replace(CAST(TRY_CAST({c} AS DOUBLE) AS VARCHAR), '\\.0$', '')"
    if is_boolean_type(duck_type):
        return f"lower(CAST({c} AS VARCHAR))"
    return f"CAST({c} AS VARCHAR)"


def number_expr(column: str) -> str:
    """SQL giving a column as DOUBLE; text that is no number, inf and nan become NULL."""
    x = f"TRY_CAST({qi(column)} AS DOUBLE)"
    return f"CASE WHEN isfinite({x}) THEN {x} END"


WORD_PATTERN = r"[\pL\pN]+"  # a word: a run of letters and digits of any script (RE2, DuckDB's regex engine)


def tokens_expr(column: str, duck_type: str, kind: str, delimiter: str = "|", ngrams: int = 1) -> str:
    """SQL giving a column's tokens as a VARCHAR list (NULL for a NULL cell).

    ``text``: the lower-cased words (``WORD_PATTERN``), with ``ngrams`` = 2 followed by the
    adjacent word pairs joined by a space.  ``multi``: the values between ``delimiter``s,
    trimmed, empty ones dropped; a LIST column's elements as text."""
    c = qi(column)
    if kind == "multi":
        if str(duck_type).endswith("[]"):
            return f"list_filter(list_transform({c}, lambda v: trim(CAST(v AS VARCHAR))), lambda v: v IS NOT NULL AND v <> '')"
        return f"list_filter(list_transform(string_split(CAST({c} AS VARCHAR), {ql(delimiter)}), lambda v: trim(v)), lambda v: v <> '')"
    words = f"regexp_extract_all(lower(CAST({c} AS VARCHAR)), {ql(WORD_PATTERN)})"
    if int(ngrams) < 2:
        return words
    # each word beside the next (not an index lambda over the words: that re-runs the regex per word)
    pairs = f"list_transform(list_zip(list_slice({words}, 1, -2), list_slice({words}, 2, -1)), lambda p: p[1] || ' ' || p[2])"
    return f"list_concat({words}, {pairs})"
