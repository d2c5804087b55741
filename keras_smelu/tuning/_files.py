"""Writing result files so that readers never see a partial file and writers never collide.

Several workers (or two runs) may write one output folder at once: each write goes to a
temporary file of its own in the same folder, is flushed to disk, and replaces the target in
one atomic step, under an exclusive lock on the folder (where the platform has `fcntl`). A
full disk leaves nothing partial behind and says so.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: atomic replace without a lock
    fcntl = None

LOCK_NAME = ".keras-smelu.lock"


@contextlib.contextmanager
def folder_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Holds an exclusive lock on `directory` (between the processes of one machine)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(directory / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes `data` to `path` atomically (a unique temporary file, then `os.replace`).

    Raises:
        OSError: "disk full ..." when the disk has no room; the target is left as it was and
            no temporary file remains.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # one per writer
    # Mode 0666 less the umask, as `open` gives (mkstemp's 0600 would hide results).
    handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise OSError(
                errno.ENOSPC, f"disk full: could not write {path} (it is left as it was)"
            ) from error
        raise
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Writes `text` (UTF-8) to `path` atomically; see `write_bytes`."""
    return write_bytes(path, text.encode("utf-8"))


def write_csv(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, str]], columns: Sequence[str]
) -> Path:
    """Writes `rows` under the header `columns` to `path` atomically."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())
