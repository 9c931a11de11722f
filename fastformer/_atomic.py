"""Atomic file writes: a crash at any point leaves the old file or the new
one, never a mix (SPEC section 4)."""
import os
import secrets


def fsync_dir(directory):
    """Make a rename inside `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


def write_temp(directory, data, prefix):
    """Write `data` to a new temporary file in `directory`, flushed and
    fsynced; returns its path (the caller renames or removes it)."""
    # Not tempfile.mkstemp: its files are private (0600) where a checkpoint
    # should get the usual permissions (0666 less the umask).
    tmp = os.path.join(directory, f"{prefix}{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _remove_quietly(tmp)
        raise
    return tmp


def atomic_write_bytes(path, data, temp_prefix=None):
    """Replace `path` by `data`: temp file in the same folder (named
    temp_prefix + random + ".tmp"), fsync, rename, fsync the folder."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = temp_prefix if temp_prefix is not None else "." + os.path.basename(path) + "."
    tmp = write_temp(directory, data, prefix=prefix)
    try:
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(directory)


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
