"""SQLite's error messages in words a person can act on.

The state database, the night log and the reports that read them all meet
the same damaged files (a text file, a truncated copy, a read-only folder,
a full disk); they name the problem the same way.
"""

from __future__ import annotations


def sqlite_problem(exc: BaseException) -> str:
    """The words of an sqlite3 or OS error, with what they mean to a person."""
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "not a database" in lowered:
        return f"not an SQLite database (garbage or another kind of file): {text}"
    if "malformed" in lowered:
        return f"corrupt or truncated: {text}"
    if "readonly" in lowered or "read-only" in lowered:
        return f"read-only (file, folder or file system): {text}"
    if "disk is full" in lowered or "no space" in lowered:
        return f"disk full: {text}"
    return text
