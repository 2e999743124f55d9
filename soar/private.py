"""Files soar keeps for itself (the state directory and what is in it): folders 0700, files 0600.

Created with those modes from the start (``mkdir(mode=)``, ``os.open(mode=)``), so there is no
moment when another user could open them; one found looser (made by an older soar, or a
package's 0755 folder) is tightened when soar opens it. A folder that is not ours to change (another
owner, a shared sticky folder such as /tmp) is left as it is: the files in it are 0600 all the same.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, keep: int) -> None:
    with contextlib.suppress(OSError):  # gone meanwhile, or not ours: nothing to do
        st = path.stat()
        if st.st_mode & stat.S_ISVTX or st.st_uid != os.getuid():
            return
        if stat.S_IMODE(st.st_mode) & ~keep:
            path.chmod(stat.S_IMODE(st.st_mode) & keep)


def private_dir(folder: Path) -> Path:
    """``folder``, created 0700 with every missing parent, or tightened to owner-only if it exists."""
    missing: list[Path] = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=DIR_MODE)
    _tighten(folder, DIR_MODE)
    return folder


def private_file(path: Path) -> Path:
    """``path`` exists and is 0600: created empty with that mode, or tightened (an empty file is a valid
    SQLite database, whose -wal and -shm files SQLite then creates with the same mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a new file 0600; FileExistsError if it exists (never overwritten)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def private_sqlite(path: Path) -> Path:
    """A SQLite database file 0600 in a 0700 folder, its journal files tightened if they exist."""
    private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        _tighten(path.with_name(path.name + suffix), FILE_MODE)
    return path
