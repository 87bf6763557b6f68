"""Atomic file output, shared by every layer that writes user-visible files (no dependencies)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it is renamed over `path`, on failure
    removed, so readers never see a half-written file. The file gets the usual permissions
    (0666 minus the umask). A `path` that exists and is not a regular file (``/dev/null``, a
    pipe) is written directly: renaming over it would replace the device with a file."""
    path = Path(path)
    if path.exists() and not path.is_file():
        yield path
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    except OSError as err:  # name the file asked for, not the temporary one
        raise OSError(err.errno, err.strerror, str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Writes `data` to `path` through `atomic_output`."""
    with atomic_output(path) as tmp:
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(tmp, mode) as f:
            f.write(data)
