"""Writing files so that a crash, a full disk or a kill never leaves half of one behind."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, then rename it into place.
    Every step goes through one handle on the folder, so a temporary file is removed
    from the folder it was made in, whatever happens to the folder's name meanwhile."""
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    tmp = f".{path.name}.{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder)
            raise
    finally:
        os.close(folder)
