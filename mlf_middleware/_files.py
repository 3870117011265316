"""Owner-only files and folders, whatever the umask; symlinks refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .exceptions import ConfigError

__all__ = ["open_private", "private_dir", "refuse_symlink"]


def refuse_symlink(path: Path) -> None:
    """Raise ConfigError when ``path`` is a symbolic link."""
    if path.is_symlink():
        raise ConfigError(f"refusing to use {path}: it is a symbolic link")


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700 folders; return it."""
    refuse_symlink(path)
    missing = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(folder, 0o700)  # whatever the umask
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder")

    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """Open ``path``, creating it owner-only (0600) if missing; a descriptor.

    A file that already exists keeps its mode: it is the user's to set.
    """
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return os.open(path, flags)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)  # the umask cannot widen it, but be sure
    except BaseException:
        os.close(fd)
        raise

    return fd
