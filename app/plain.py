"""User-supplied text made safe for Streamlit's Markdown.

Column names, file names, table names and error messages that quote them come from uploaded
files and specs; Streamlit renders message boxes, captions and markdown as Markdown, so a CSV
header ``![x](http://evil/pixel)`` would fetch an external image and ``[click](http://…)`` would
show a link inside the app's own error box.  ``plain`` escapes every Markdown, LaTeX and HTML
character and breaks URL autolinking, so the text shows as typed and nothing is fetched.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_\[\]()<>#!|~$])")  # links, images, HTML, code, emphasis, LaTeX, headings, tables
_AUTOLINK = re.compile(r"(?i)(://|\bwww\.)")


def plain(text: object) -> str:
    """``text`` as literal Markdown: specials backslash-escaped, ``://`` and ``www.`` broken so
    no link is made, newlines kept."""
    unlinked = _AUTOLINK.sub(lambda m: m.group(1)[:-1] + "\u200b" + m.group(1)[-1], str(text))  # a zero-width space
    return _SPECIAL.sub(r"\\\1", unlinked)
