"""Writing files the user named, without touching anything else on the way.

A file is written to a temporary file in its own directory and renamed over its name:
a symbolic link planted at that name is replaced, never followed, and a reader never sees
half a file. The mode is set on the open file before it gets its name, so a Secret is never
readable by others, not even for a moment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from envspec.errors import EnvspecError, display_path

PRIVATE_MODE = 0o600


def default_mode() -> int:
    """What `open()` would give a new file: 0666 less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def replace_file(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` by rename: a link at `path` is replaced, not followed."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".envspec-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def sha256_of(path: Path) -> str | None:
    """The digest of a regular file (not followed through a link), or None."""
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return None
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ensure_directory(directory: Path, shown: str) -> None:
    """`directory` exists as a directory afterwards, or a user error (starting with `shown`,
    the option as given) says why it cannot."""
    if directory.is_symlink() and not directory.exists():
        link = display_path(os.readlink(directory))
        raise EnvspecError(f"{shown}: {display_path(directory)} is a symbolic link to '{link}', which does not exist")
    if directory.exists():
        if not directory.is_dir():
            raise EnvspecError(f"{shown}: {display_path(directory)} exists and is not a directory")
        return
    for parent in directory.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise EnvspecError(f"{shown}: {display_path(parent)} is not a directory")
            break
    try:
        directory.mkdir(parents=True)
    except OSError as exc:
        raise EnvspecError(f"{shown}: cannot create the directory: {exc.strerror}") from None


def write_error(path: Path, exc: OSError) -> EnvspecError:
    return EnvspecError(f"{display_path(path)}: cannot write: {exc.strerror or exc}")
