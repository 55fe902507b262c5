"""Errors the engine raises for problems the *user* can fix.

Everything a user can get wrong (a file, a column name, a spec field) surfaces as a
``StudioError`` whose message says what is wrong and what to do.  The CLI prints it as one
``error: …`` line and exits 2; the app shows it with ``st.error``.  Anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


class StudioError(Exception):
    """A problem with the user's data, spec or arguments; the message names the fix."""


def data_not_loaded(table: str, sql: str, loaded: list[str], purpose: str) -> StudioError | None:
    """The plain message for a run whose training table is not in this session (after a
    restart, say), or None when it is loaded and the original error is the one to show.
    DuckDB's own text ("Catalog Error ... Did you mean duckdb_logs?") would only confuse."""
    if table and not sql.strip():
        if table.lower() in {t.lower() for t in loaded}:
            return None
        what = f"table {table!r}"
    else:
        what = "the tables its data.sql reads"
    return StudioError(f"the run's data is not loaded in this session: load {what} on the Data page {purpose}")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (dotted field path), what, and how to fix it."""

    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        return f"{text} ({self.fix})" if self.fix else text


class SpecError(StudioError):
    """A spec with one or more problems; ``problems`` holds all of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid spec"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))


class SplitMismatch(StudioError):
    """The data no longer gives the rows a run was split on (or the run recorded no split)."""


class TrainingDiverged(StudioError):
    """The loss became NaN or infinite; training stopped cleanly."""


class Cancelled(Exception):
    """Training was cancelled by its owner; not an error to report."""
