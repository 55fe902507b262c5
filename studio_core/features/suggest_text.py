"""Which text columns are free text or sets of values, judged on the training rows.

* **Free text**: at least half the values hold a space, values average at least 3 words, and
  at least 30 distinct values (or a fifth of the rows) -- reviews, titles, tickets.  A code
  column ("AB-1234", unique ids) has no spaces and stays categorical or ignored as before.
* **A set of values in one cell**: a LIST column, or text where at least 30 % of the values hold
  a delimiter (``|``, ``;``, then ``,``), the parts repeat (fewer distinct parts than distinct
  cells, at most 5,000) and are short (under 40 characters on average) -- ``Action|Comedy``.
  Commas are tried last, since "Paris, France" is a value with a comma in it: it counts only
  when its parts repeat as much.
Each decision carries the measured figures in its reason.  Token limits come from the data: a
text keeps the 95th percentile of distinct tokens per row (8 to 256), a set the 99th (2 to 64).
"""

from __future__ import annotations

from typing import Any

from studio_core.data.sqlutil import WORD_PATTERN, qi, ql, tokens_expr
from studio_core.spec.schema import TextFeature

DELIMITERS = ("|", ";", ",")
MIN_SPACE_SHARE = 0.5
MIN_WORDS = 3.0
MIN_DELIMITED_SHARE = 0.3
MAX_PART_CHARS = 40
MAX_PARTS = 5_000
TEXT_EMBEDDING_DIM = 16
TEXT_MAX_TOKENS = 50_000
TEXT_WIDE_L2 = 1e-3  # the wide part's L2 when a table has free text


def _shape(con: Any, relation: str, col: str) -> dict[str, float]:
    """Spaces, words and delimiters of a VARCHAR column's non-null values (one query)."""
    c = f"CAST({qi(col)} AS VARCHAR)"
    parts = [f"avg(CASE WHEN contains({c}, ' ') THEN 1.0 ELSE 0.0 END)", f"avg(len(regexp_extract_all({c}, {ql(WORD_PATTERN)})))",
             f"count(DISTINCT {c})", "count(*)"]
    parts += [f"avg(CASE WHEN contains({c}, {ql(d)}) THEN 1.0 ELSE 0.0 END)" for d in DELIMITERS]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation} WHERE {qi(col)} IS NOT NULL").fetchall()[0]
    keys = ["spaces", "words", "distinct", "rows"] + [f"delim{d}" for d in DELIMITERS]
    return {k: float(v or 0.0) for k, v in zip(keys, row)}


def _parts(con: Any, relation: str, tokens: str) -> tuple[int, float, float, float]:
    """(distinct parts, mean part length, mean parts per row, 99th percentile of parts per row)."""
    row = con.execute(
        f"WITH t AS (SELECT {tokens} AS l FROM {relation}) "
        f"SELECT (SELECT count(DISTINCT p) FROM (SELECT unnest(l) AS p FROM t)), (SELECT avg(length(p)) FROM (SELECT unnest(l) AS p FROM t)), "
        f"avg(len(l)), quantile_cont(len(l), 0.99) FROM t WHERE l IS NOT NULL"
    ).fetchall()[0]
    return int(row[0] or 0), float(row[1] or 0.0), float(row[2] or 0.0), float(row[3] or 0.0)


def _clamp(x: float, low: int, high: int) -> int:
    return int(max(low, min(high, round(x))))


def text_feature(con: Any, relation: str, col: str, duck_type: str) -> tuple[TextFeature, str] | None:
    """A ``TextFeature`` for ``col`` with its reason, or None when it is not text or a set."""
    t = str(duck_type)
    if t.endswith("[]"):
        if t.count("[]") > 1:
            return None
        tokens = tokens_expr(col, t, "multi")
        distinct, _, mean, p99 = _parts(con, relation, tokens)
        if distinct == 0:
            return None
        return (TextFeature(name=col, kind="multi", min_count=2, max_tokens=TEXT_MAX_TOKENS, max_length=_clamp(p99, 2, 64), embedding_dim=8),
                f"a list column: a set of {distinct:,} distinct values, {mean:.1f} per row")
    if t != "VARCHAR":
        return None
    shape = _shape(con, relation, col)
    if shape["rows"] == 0:
        return None
    many = shape["distinct"] >= 30 and shape["distinct"] >= 0.2 * shape["rows"]
    if shape["spaces"] >= MIN_SPACE_SHARE and shape["words"] >= MIN_WORDS and many:
        tokens = tokens_expr(col, t, "text", ngrams=2)
        p95 = con.execute(f"SELECT quantile_cont(len(list_distinct({tokens})), 0.95) FROM {relation} WHERE {qi(col)} IS NOT NULL").fetchall()[0][0]
        return (TextFeature(name=col, kind="text", ngrams=2, min_count=2, max_tokens=TEXT_MAX_TOKENS, max_length=_clamp(p95 or 8, 8, 256),
                            embedding_dim=TEXT_EMBEDDING_DIM),
                f"free text: {shape['words']:.0f} words a value on average, {shape['spaces']:.0%} with spaces, "
                f"{int(shape['distinct']):,} distinct values; a bag of words and word pairs")
    for d in DELIMITERS:
        if shape[f"delim{d}"] < MIN_DELIMITED_SHARE:
            continue
        tokens = tokens_expr(col, t, "multi", delimiter=d)
        distinct, length, mean, p99 = _parts(con, relation, tokens)
        if 0 < distinct <= MAX_PARTS and distinct < shape["distinct"] and length < MAX_PART_CHARS:
            return (TextFeature(name=col, kind="multi", delimiter=d, min_count=2, max_tokens=TEXT_MAX_TOKENS, max_length=_clamp(p99, 2, 64),
                                embedding_dim=8),
                    f"a set of values separated by {d!r}: {distinct:,} distinct values, {mean:.1f} per row")
    return None
