"""Replacing a folder in one atomic step that survives a kill at any instant, and the chores around it.

A new folder is written complete beside the old one, at ``.NAME.tmp-XXXX``, its files and folders
fsynced and given the umask's permissions, then swapped with the old one in ONE system call: Linux
``renameat2(RENAME_EXCHANGE)``, macOS ``renamex_np(RENAME_SWAP)``. A SIGKILL at any moment leaves
the old or the new folder whole at the path, never neither. The old folder, now at the temporary
name, is then removed.

Fallback, where no exchange exists (Windows, a filesystem that refuses it with EINVAL / ENOSYS /
ENOTSUP): the old folder is renamed aside to ``.NAME.old-XXXX`` and the new one renamed in. A kill
between those two renames leaves nothing at the path; :func:`recover`, which every save and every
model read calls first, renames the aside folder back (or, where it cannot, reads from it).

A temporary folder holds the marker file :data:`MARKER` while it is incomplete (being written, or
being removed after a swap) and is locked (``flock``) while its save runs, so :func:`clean` knows
the leftovers of an interrupted save from anything else and never touches a save in progress.

Fault injection, for the kill tests: ``TASKKIT_FAULT_AT=<stage>`` SIGKILLs the process at that
stage of :func:`replace` (:data:`STAGES`); ``fault()`` is a no-op otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

MARKER = ".taskkit-incomplete"
STAGES = (
    "written",   # every file of the new folder written, nothing fsynced yet
    "synced",    # files and folders fsynced, the marker still there
    "ready",     # marker removed: a complete folder at the temporary name
    "aside",     # fallback only: the old folder renamed aside, nothing at the path
    "swapped",   # the new folder at the path, the old one at the temporary name (or aside)
    "cleanup",   # part of the old folder removed
    "cleaned",   # the old folder gone, just before returning
)
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}
_SYS_RENAMEAT2 = {"x86_64": 316, "amd64": 316, "aarch64": 276, "arm64": 276, "riscv64": 276}
_AT_FDCWD, _RENAME_EXCHANGE, _RENAME_SWAP = -100, 2, 2


def fault(stage: str) -> None:
    """SIGKILL this process if ``TASKKIT_FAULT_AT`` names ``stage`` (tests only)."""
    if os.environ.get("TASKKIT_FAULT_AT") == stage:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def umask() -> int:
    try:  # Linux reports it without changing it (os.umask would, for a moment, for every thread)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a folder for fsync; NTFS journals its renames
    fsync_file(path)


def fsync_file(path: str | Path) -> None:
    """Flush a file (or, on POSIX, a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange_call(a: bytes, b: bytes) -> int | None:
    libc = ctypes.CDLL(None, use_errno=True)
    if sys.platform.startswith("linux"):
        fn = getattr(libc, "renameat2", None)
        if fn is not None:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            return int(fn(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE))
        number = _SYS_RENAMEAT2.get(platform.machine().lower())  # glibc < 2.28
        if number is None:
            return None
        return int(libc.syscall(ctypes.c_long(number), ctypes.c_int(_AT_FDCWD), a, ctypes.c_int(_AT_FDCWD), b,
                                ctypes.c_uint(_RENAME_EXCHANGE)))
    if sys.platform == "darwin":
        fn = getattr(libc, "renamex_np", None)
        if fn is not None:
            fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            return int(fn(a, b, _RENAME_SWAP))
    return None


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the system or filesystem cannot."""
    try:
        result = _exchange_call(os.fsencode(a), os.fsencode(b))
    except (OSError, AttributeError, TypeError):
        return False
    if result is None:
        return False
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _lock(folder: Path) -> int | None:
    """Hold an exclusive lock on ``folder`` (released at close, or when the process dies)."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _is_locked(folder: Path) -> bool:
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return True  # cannot tell: leave it alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A fresh, marked, locked ``.NAME.tmp-XXXX`` folder beside ``path``, removed if the block fails."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    (tmp / MARKER).write_text("an incomplete taskkit save: safe to delete\n", encoding="ascii")
    lock = _lock(tmp)
    try:
        yield tmp
    except BaseException:
        if tmp.is_dir():  # the unfinished new folder, or the old one after a swap: ours either way
            remove(tmp)
        raise
    finally:
        if lock is not None:
            os.close(lock)


def files_under(folder: Path) -> list[str]:
    """Every file (and link) below ``folder``, as sorted relative POSIX paths, the marker left out."""
    found = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        found += [(rel / f).as_posix() for f in files]
        found += [(rel / d).as_posix() for d in dirs if os.path.islink(os.path.join(root, d))]
    return sorted(f for f in found if f != MARKER)


def _seal(tmp: Path) -> None:
    """Permissions from the umask, every file and folder fsynced, then the marker removed."""
    mask = umask()
    for root, dirs, files in os.walk(tmp, topdown=False):
        for name in files:
            file = os.path.join(root, name)
            if not os.path.islink(file):
                os.chmod(file, 0o666 & ~mask)
                fsync_file(file)
        os.chmod(root, 0o777 & ~mask)
        fsync_dir(Path(root))
    fault("synced")
    (tmp / MARKER).unlink()
    fsync_dir(tmp)


def replace(tmp: Path, path: Path) -> None:
    """Put the complete folder ``tmp`` (from :func:`staged`) at ``path`` in one atomic step."""
    fault("written")
    _seal(tmp)
    fault("ready")
    parent = path.parent
    if not os.path.lexists(path):
        os.rename(tmp, path)
        fsync_dir(parent)
        fault("swapped")
        return
    if exchange(tmp, path):
        fsync_dir(parent)
        fault("swapped")
        remove(tmp, "cleanup")  # the old folder, now at the temporary name
    else:  # no atomic exchange here: old aside, new in; recover() undoes a kill in between
        old = parent / tmp.name.replace(".tmp-", ".old-", 1)
        os.rename(path, old)
        fsync_dir(parent)
        fault("aside")
        try:
            os.rename(tmp, path)
        except BaseException:
            if not os.path.lexists(path):
                os.rename(old, path)
            raise
        fsync_dir(parent)
        fault("swapped")
        remove(old, "cleanup")
    with contextlib.suppress(OSError):
        fsync_dir(parent)
    fault("cleaned")


def remove(folder: Path, stage: str | None = None) -> None:
    """Delete a folder that is taskkit's, marking it incomplete first, so that a kill halfway
    leaves a leftover :func:`clean` recognises. Failures are left for the next :func:`clean`."""
    try:
        (folder / MARKER).write_text("a taskkit folder being removed: safe to delete\n", encoding="ascii")
        entries = [e for e in os.scandir(folder) if e.name != MARKER]
    except OSError:
        return
    for i, entry in enumerate(entries):
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        if i == 0 and stage:
            fault(stage)
    with contextlib.suppress(OSError):
        os.unlink(folder / MARKER)
        os.rmdir(folder)


def _siblings(path: Path, kind: str) -> list[Path]:
    prefix = f".{path.name}.{kind}-"
    try:
        return [p for p in path.parent.iterdir() if p.name.startswith(prefix) and not p.is_symlink() and p.is_dir()]
    except OSError:
        return []


def recover(path: Path) -> Path:
    """Where the folder meant to be at ``path`` is: ``path`` itself, or, after the fallback scheme
    was killed between its two renames, the old folder, renamed back (or read where it lies)."""
    if os.path.lexists(path):
        return path
    aside = [p for p in _siblings(path, "old") if not (p / MARKER).exists()]
    if not aside:
        return path
    latest = max(aside, key=lambda p: p.stat().st_ctime_ns)
    try:
        os.rename(latest, path)
        fsync_dir(path.parent)
    except OSError:
        return latest
    return path


def clean(path: Path, ours: Callable[[Path], bool]) -> None:
    """Remove the leftovers of interrupted saves to ``path``: ``.NAME.tmp-*`` / ``.NAME.old-*``
    folders that are empty, marked incomplete, or (``ours``) a whole taskkit folder; never one
    that a running save holds locked, never anything else."""
    recover(path)  # first: with nothing at the path, an aside folder is the model
    for leftover in _siblings(path, "tmp") + _siblings(path, "old"):
        try:
            empty = not any(leftover.iterdir())
        except OSError:
            continue
        if (empty or (leftover / MARKER).is_file() or ours(leftover)) and not _is_locked(leftover):
            remove(leftover)


@contextlib.contextmanager
def _into_place(name: str | Path, path: Path) -> Iterator[None]:
    """Around the making of the temporary entry ``name``: then rename it over ``path`` (atomic)
    and fsync the folder; if anything fails, the temporary is removed and nothing is replaced."""
    try:
        yield
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    fsync_dir(path.parent)


def write_file(path: Path, data: bytes) -> None:
    """Replace the file ``path`` atomically with ``data`` (fsynced, permissions from the umask)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    with _into_place(name, path), os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        if hasattr(os, "fchmod"):
            os.fchmod(handle.fileno(), 0o666 & ~umask())  # mkstemp makes 0600
        os.fsync(handle.fileno())


def link(path: Path, target: str) -> bool:
    """Make ``path`` a symbolic link to ``target`` (replacing what is there, atomically);
    False where links cannot be made (Windows without the privilege)."""
    if os.path.islink(path) and os.readlink(path) == target:
        return True
    name = path.parent / f".{path.name}.tmp-{os.urandom(4).hex()}"
    try:
        os.symlink(target, name)
    except (OSError, NotImplementedError):
        return False
    with _into_place(name, path):
        pass  # the link is made
    return True
