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
    """Create ``path`` (and parents) if missing; new folders are 0700."""
    refuse_symlink(path)
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder")

    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """Open (creating) ``path`` as an owner-only file; return the descriptor."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise

    return fd
