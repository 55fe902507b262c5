"""What a suggestion checks beyond each column alone, so the analyst hears it before training:
rare positives, columns that look like group ids, one-to-one column pairs, and crosses that
repeat a grouping already chosen.  Each check is a few DuckDB aggregates on the training rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from studio_core.data.sqlutil import text_expr

RARE_SHARE = 0.10  # a positive class under this share of the training rows is "rare"
GROUP_MIN_VALUES, GROUP_MIN_ROWS_PER_VALUE = 10, 5
PAIR_MAX_VALUES = 5_000  # one-to-one checks only between columns of at most this many values
MAX_PAIRS, PAIRS_PER_QUERY = 400, 100
_ID_WORDS = ("id", "ids", "key", "group", "grp", "block", "cluster", "session", "user", "customer", "patient", "subject",
             "account", "site", "store", "household", "family", "device", "batch", "plate", "school", "hospital",
             "code", "zip", "zipcode", "postcode", "sku", "item", "product", "movie", "film", "book", "merchant", "vendor")
_ID_NAME = re.compile(r"(^|[_\W\d])(" + "|".join(_ID_WORDS) + r")($|[_\W\d])")


def _words(name: str) -> str:
    """A column name as lower-case words: ``productCode`` -> ``product_code``."""
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def id_like_name(name: str) -> bool:
    """``block_id``, ``userId``, ``Patient ID``, ``site``: a name that says its values name things."""
    return bool(_ID_NAME.search(_words(name)) or re.search(r"[a-z0-9](Id|ID)$", name))


def looks_like_group_id(name: str, distinct: int, nonnull: int, integral: bool, text: bool) -> bool:
    """Integer or text codes under an id-like name, each value shared by many rows."""
    return ((integral or text) and id_like_name(name) and distinct >= GROUP_MIN_VALUES
            and nonnull >= GROUP_MIN_ROWS_PER_VALUE * distinct)


_QUANTITY = re.compile(r"(^|_)(year|years|age|count|counts|qty|quantity|amount|price|total|duration|hours|days|minutes|seconds|visits)($|_)")


def quantity_name(name: str) -> bool:
    """``year``, ``visits_count``, ``itemCount``: integers that measure something, numeric even
    with few distinct values (a small-integer column is otherwise taken as categorical)."""
    return bool(_QUANTITY.search(_words(name)))


def looks_like_code(name: str, distinct: int, nonnull: int, integral: bool) -> bool:
    """Integers under an id-like name that repeat (``item_id``, ``zip``): labels, not
    quantities -- a vocabulary, not a standardised number.  A count, an age or a year keeps its
    numeric role (their names say nothing of ids); an id that never repeats is ignored elsewhere."""
    return integral and id_like_name(name) and distinct >= GROUP_MIN_VALUES and distinct < nonnull


CURVE_MIN_DISTINCT = 64  # a numeric column with at least this many values gets a learned curve (tree bins or periodic)
TREE_BINS = 16  # at most this many target-aware bins per column
TREE_MIN_EVENTS = 64 * TREE_BINS  # rows of the rarer class (binary) or rows (regression) tree bins need: 64 per bin


def numeric_encoding(distinct: int, events: int, multiclass: bool = False) -> tuple[str, str, str]:
    """How a numeric column enters the deep part -- (transform, binning, reason).  Measured
    (bench/quality.py and its ablations, this machine, 2 seeds): piecewise-linear encoding over
    target-aware tree bins (16, embedded bin id) lifted Adult's test AUC from 0.9272 to 0.9303,
    above LightGBM, where periodic embeddings had been the best choice (quantile bins over-fit:
    diamonds R² 0.9695); on diamonds tree bins and periodic embeddings tie (0.9817 and 0.9816);
    on the generated table with 1 % positives (about 140 in training) tree bins lost 0.026 AUC
    to periodic embeddings: with few events the bins follow noise and a smooth curve is safer.
    A column of few values gains nothing from either: its bucket embedding already gives each
    value its own vector.  A multiclass label gets periodic embeddings: tree bins would be placed
    for one class against the rest (the suggestion's proxy), missing the other classes'
    thresholds -- diamonds ``cut`` test accuracy 0.7949 with tree bins, 0.8047 periodic (seed
    0); Adult ``relationship`` 0.7980 and 0.7984."""
    if distinct < CURVE_MIN_DISTINCT:
        return "standardize", "quantile", f"standardised ({distinct} distinct values: each value's bucket is also embedded)"
    if multiclass:
        return "periodic", "quantile", (f"periodic embeddings ({distinct} distinct values; a multiclass label: a smooth learned curve "
                                        "serves every class, where bins placed for one class would miss the others' thresholds)")
    if events >= TREE_MIN_EVENTS:
        return "piecewise", "tree", (f"piecewise-linear over up to {TREE_BINS} bins placed where the label changes "
                                     f"({distinct} distinct values; a shallow tree on the training rows)")
    return "periodic", "quantile", (f"periodic embeddings ({distinct} distinct values, but only {events} rows of the rarer outcome: "
                                    "a smooth learned curve, plus its quantile bucket)")


def group_note(name: str, distinct: int, nonnull: int) -> str:
    return (f"{name} looks like a group id ({distinct} values, about {nonnull / max(distinct, 1):.0f} rows each): rows of one group are "
            "alike, so with a random split the test rows' groups were also seen in training and the test figures flatter the model "
            f"on new groups; to measure it on new groups, use the grouped split by {name}")


def positive_weight_for(share: float) -> float:
    """Negatives per positive, rounded: the weight that gives both classes equal total weight."""
    return round((1 - share) / share, 1) if 0 < share < 1 else 1.0


def imbalance_note(label: str, positive: str, share: float) -> str | None:
    if not 0 < share < RARE_SHARE:
        return None
    return (f"positives ({label} = {positive}) are {share:.2%} of the training rows: judge the model by AUC and average precision "
            "rather than accuracy, set the threshold on Inspect by the share of rows flagged, and consider a positive weight of "
            f"{positive_weight_for(share):g} (negatives per positive) on the Train page; weighted scores rank as well but are no "
            "longer calibrated probabilities")


def _distinct(con, relation: str, exprs: Sequence[str]) -> int:
    return int(con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(exprs)} FROM {relation})").fetchall()[0][0])


def same_grouping(con, relation: str, a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two column groups split the rows into the same groups (a one-to-one map between
    their value combinations): equal distinct counts, and no more together."""
    na, nb = _distinct(con, relation, a), _distinct(con, relation, b)
    return na == nb and _distinct(con, relation, [*a, *b]) == na


def one_to_one_pairs(con, relation: str, exprs: dict[str, str], distinct: dict[str, int]) -> list[tuple[str, str]]:
    """Feature pairs whose values map one-to-one (e.g. ``education`` and ``educational_num``).
    Only pairs with the same number of values can be; they are counted ``PAIRS_PER_QUERY`` at a
    time in one scan each, at most ``MAX_PAIRS`` of them (2,000 binary columns would otherwise be
    two million pairs), the columns with the most values first."""
    by_count: dict[int, list[str]] = {}
    for name in exprs:
        if 1 < distinct.get(name, 0) <= PAIR_MAX_VALUES:
            by_count.setdefault(distinct[name], []).append(name)
    candidates = [(a, b) for k in sorted(by_count, reverse=True) for i, a in enumerate(by_count[k]) for b in by_count[k][i + 1 :]][:MAX_PAIRS]
    pairs = []
    for start in range(0, len(candidates), PAIRS_PER_QUERY):
        batch = candidates[start : start + PAIRS_PER_QUERY]
        counts = con.execute(f"SELECT {', '.join(f'count(DISTINCT ({exprs[a]}, {exprs[b]}))' for a, b in batch)} FROM {relation}").fetchall()[0]
        pairs += [(a, b) for (a, b), n in zip(batch, counts) if int(n) == distinct[a]]
    return pairs


def pair_note(a: str, b: str) -> str:
    return (f"{a} and {b} are one-to-one (each value of one goes with one value of the other): they carry the same information; "
            "keep one of them (set the other's role to ignored), or the crosses and importances are split between the two")


def distinct_crosses(con, relation: str, candidates: Sequence, exprs: dict[str, str], limit: int) -> tuple[list, list[str]]:
    """Up to ``limit`` candidates, best first, leaving out any that groups the rows exactly as
    one already chosen (``education x occupation`` and ``educational_num x occupation``)."""
    chosen: list = []
    notes: list[str] = []
    for c in candidates:
        if len(chosen) >= limit:
            break
        twin = next((k for k in chosen if same_grouping(con, relation, [exprs[x] for x in c.columns], [exprs[x] for x in k.columns])), None)
        if twin is None:
            chosen.append(c)
        else:
            notes.append(f"cross {' x '.join(c.columns)} left out: it groups the rows exactly as {' x '.join(twin.columns)}, already chosen")
    return chosen, notes


def table_notes(con, train: str, labelled: str, data, used: Sequence, stats: dict,
                types: dict) -> tuple[float | None, list[str], list[str], list[str]]:
    """(positive share, group-id columns, time columns, notes) of a suggestion's feature
    columns ``used`` (``ColumnRole``) on the training rows (``labelled`` has the 0/1 label as
    ``__y``)."""
    share = float(con.execute(f"SELECT avg(__y) FROM {labelled}").fetchall()[0][0] or 0) if data.task == "binary" else None
    groups = [r.name for r in used if r.reason.startswith("looks like a group id")]
    notes = [n for n in [imbalance_note(data.label, data.positive_class, share) if share is not None else None] if n]
    notes += [group_note(g, stats[g][1], stats[g][0]) for g in groups]
    times = [] if data.split == "time" else time_columns(types, stats, data.label)
    notes += [time_note(times[0])] if times else []
    pairs = one_to_one_pairs(con, train, {r.name: text_expr(r.name, types[r.name]) for r in used}, {r.name: r.distinct for r in used})
    return share, groups, times, notes + [pair_note(a, b) for a, b in pairs]


_TIME_WORDS = ("time", "timestamp", "ts", "date", "datetime", "day", "epoch", "created", "updated")
_TIME_NAME = re.compile(r"(^|_)(" + "|".join(_TIME_WORDS) + r")($|_)|_at$|^at$")
TIME_MIN_DISTINCT = 20  # a column ordering rows in time takes many values


def time_columns(types: dict[str, str], stats: dict, label: str) -> list[str]:
    """Columns that order the rows in time, best first: DATE / TIMESTAMP columns, then numbers
    (integers or not) under a time-like name (``ts``, ``event_time``, ``created_at``,
    ``unixTime``) with many values."""
    typed, named = [], []
    for col, t in types.items():
        if col == label or col not in stats:
            continue
        distinct = stats[col][1]
        if distinct < TIME_MIN_DISTINCT:
            continue
        upper = t.upper()
        if upper.startswith(("TIMESTAMP", "DATE")):
            typed.append(col)
        elif _TIME_NAME.search(_words(col)) and not upper.startswith(("VARCHAR", "BOOL")):
            named.append(col)
    return typed + named


def time_note(col: str) -> str:
    return (f"{col} orders the rows in time: a random split scores the model on a past it has already seen. Use the "
            f"time-ordered split (data.split = 'time', data.split_column = '{col}'): validation and test are then the latest rows")
