"""DuckDB errors as the one-line messages a user reads: the first line and its detail, and
running out of a session's memory or spill disk named as the limit it hit."""

from __future__ import annotations


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    detail = next((t.strip() for t in text[1:] if t.strip() and not t.startswith("Possible")), "")
    msg = first.replace("Invalid Input Error: ", "").replace("Conversion Error: ", "")
    return f"{msg} {detail}".strip()[:300]


def out_of_resources(exc: BaseException, what: str = "the query", fix: str = "add filters or a LIMIT, or use fewer rows or columns") -> str:
    """The message for a DuckDB out-of-memory error: its memory limit or its spill-disk limit."""
    if "max_temp_directory_size" in str(exc):
        return f"{what} needs more disk than this session may use for spilling (WDSTUDIO_SESSION_DISK); {fix}"
    return f"{what} needs more memory than this session may use (WDSTUDIO_SESSION_MEMORY); {fix}"
