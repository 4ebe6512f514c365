"""What a path that is not a regular file is, in a person's words.

A shot file, a sample night's OUTPUT and the like must be regular files: a
FIFO blocks its reader (at ``open`` even), ``/dev/zero`` never ends, and a
rename onto a device replaces the device. Those who refuse such a path say
what it is with :func:`file_kind`.
"""

from __future__ import annotations

import stat

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str | None:
    """``"a FIFO (named pipe)"`` and the like for an ``st_mode``; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a special file"
