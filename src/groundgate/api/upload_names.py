"""The names uploaded files are stored under, checked before anything is written.

A file is stored under its base name: a client may send a path (a browser uploading a
folder sends ``folder/notes.md``), and both ``/`` and ``\\`` separate folders, so a name never
chooses where a file is written. Refused with a 400, before any file is read:

- a name with a control character (NUL included): no file system or log should see one;
- a name longer than a file system allows (255 bytes);
- two files with the same stored name in one upload: the second would silently replace the
  first (the name is the document's id).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from groundgate.errors import InvalidRequest

DEFAULT_NAME = "upload.txt"
MAX_NAME_BYTES = 255


def upload_names(filenames: Sequence[str | None]) -> list[str]:
    """The stored name of each upload, in order; raises :class:`InvalidRequest`."""
    names: list[str] = []
    seen: set[str] = set()
    for filename in filenames:
        name = base_name(filename or "")
        if any(unicodedata.category(char) == "Cc" for char in name):
            raise InvalidRequest(
                f"File name {_shown(name)} contains a control character.", param="files"
            )
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise InvalidRequest(
                f"File names are at most {MAX_NAME_BYTES} bytes; one is longer.", param="files"
            )
        if name in seen:
            raise InvalidRequest(
                f"Two files are named {_shown(name)}: names must be unique within one upload.",
                param="files",
            )
        seen.add(name)
        names.append(name)
    return names


def base_name(filename: str) -> str:
    """What follows the last ``/`` or ``\\`` (``.`` and ``..`` are no names)."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return DEFAULT_NAME if name in ("", ".", "..") else name


def _shown(name: str) -> str:
    return repr(name) if len(name) <= 100 else repr(name[:100]) + "..."
