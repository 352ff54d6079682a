"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash, a Ctrl-C or a SIGTERM never leaves a half-written checkpoint, CSV or audio file
behind: either the old file (or nothing) or the complete new one is there. Finished files
get the mode the user's umask gives a new file (``0o666 & ~umask``), as ``open`` would.

Temporary names carry the host and process id (``.<name>.banda-<host>-<pid>-<random><suffix>``),
so the temporary files of a process that was killed (``kill -9``, a node that went down)
are recognised and removed by the next banda process that writes into the same folder.
"""
import contextlib
import csv
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence, Set, Union

PathLike = Union[str, os.PathLike]

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"
_TEMP_RE = re.compile(r"\.banda-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-")
_swept: Set[str] = set()


def file_mode() -> int:
    """The mode a new file gets under the current umask."""
    try:  # Linux: read the umask without changing it (os.umask would, for a moment, for all threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: PathLike) -> int:
    """Remove the temporary files in ``folder`` left by dead banda processes of this host."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _TEMP_RE.search(entry.name)
        if m is None or m.group("host") != _HOST or int(m.group("pid")) == os.getpid() or _alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed


def _sweep_once(folder: Path) -> None:
    key = str(folder.resolve())
    if key not in _swept:
        _swept.add(key)
        remove_stale_temps(folder)


def temp_file_path(folder: PathLike, prefix: str = "", suffix: str = ".tmp") -> Path:
    """Create an empty temporary file in ``folder`` with a name :func:`remove_stale_temps` knows."""
    folder = Path(folder)
    _sweep_once(folder)
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}.banda-{_HOST}-{os.getpid()}-", suffix=suffix, dir=folder)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    ``suffix`` keeps the extension for writers that infer the format from it (soundfile).
    On an exception (also KeyboardInterrupt and banda's SIGTERM) the temporary file is
    removed and the target is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_file_path(path.parent, prefix=f".{path.name}", suffix=suffix or ".tmp")
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        _raise_if_disk_full(e, path)
        raise


def remove_stale_temp_dirs(parent: PathLike, name: str) -> None:
    """Remove the temporary folders of ``name`` (:func:`atomic_dir`'s) left in ``parent`` by dead
    banda processes of this host."""
    import shutil

    for entry in Path(parent).iterdir():
        m = _TEMP_RE.search(entry.name) if entry.name.startswith(f".{name}.banda-") else None
        if m and entry.is_dir() and m.group("host") == _HOST and int(m.group("pid")) != os.getpid() \
                and not _alive(int(m.group("pid"))):
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; when the block completes it replaces
    ``path`` as a whole, with the mode ``mkdir`` gives under the umask.

    An earlier folder at ``path`` is moved aside just before the rename and removed after it.
    On an exception (also KeyboardInterrupt and banda's SIGTERM) the new folder is removed and
    the earlier one, if it was moved, put back. Temporary folders of dead processes (a
    ``kill -9``) are removed on the next call for the same ``path``.
    """
    import shutil

    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.banda-{_HOST}-{os.getpid()}-", dir=parent))
    old = None
    try:
        yield tmp
        mode = file_mode()
        os.chmod(tmp, mode | (mode & 0o444) >> 2)  # what mkdir gives under the umask (mkdtemp gives 0o700)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.banda-{_HOST}-{os.getpid()}-old-", dir=parent))
            os.replace(path, old / "previous")
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "previous").exists() and not path.exists():
            os.replace(old / "previous", path)  # put the earlier folder back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _raise_if_disk_full(e: BaseException, path: Path) -> None:
    """Writers report a full disk in their own words (libsndfile: "System error.", torch:
    "PytorchStreamWriter failed writing file"); say what it is, naming the file."""
    import errno

    from .errors import BandaError

    if isinstance(e, BandaError) or not isinstance(e, (OSError, RuntimeError)):
        return
    full = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if not full:
        try:
            st = os.statvfs(path.parent)
            full = st.f_bavail * st.f_frsize < DISK_FULL_BYTES
        except OSError:
            return
    if full:
        raise BandaError(f"{path}: cannot write, no space left on the device (free some space or choose another folder)") from None


DISK_FULL_BYTES = 1 << 20  # a write that fails with less free space than this is reported as a full disk


@contextlib.contextmanager
def temp_file(suffix: str = ".tmp", folder: Optional[PathLike] = None) -> Iterator[Path]:
    """A scratch file (in ``$TMPDIR`` unless ``folder``), removed on exit, also on SIGTERM."""
    tmp = temp_file_path(folder if folder is not None else tempfile.gettempdir(), prefix="banda", suffix=suffix)
    try:
        yield tmp
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        _raise_if_disk_full(e, tmp)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: PathLike, rows: Iterable[Mapping], fieldnames: Sequence[str]) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fieldnames))
            writer.writeheader()
            for row in rows:
                writer.writerow(row)


def torch_save(obj, path: PathLike) -> None:
    import torch

    with atomic_path(path, suffix=".pth") as tmp:
        torch.save(obj, tmp)


# ------------------------------------------------------------------ output paths
def name_max(folder: PathLike) -> int:
    try:
        return os.pathconf(str(folder), "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(folder: PathLike, option: str = "-o") -> Path:
    """Check that ``folder`` is, or can be made, a writable folder, before any work starts.

    Nothing is created: the nearest existing ancestor must be a folder this process can write
    into. Returns the resolved folder. Raises :class:`~banda.errors.BandaError` naming it.
    """
    from .errors import BandaError

    folder = Path(folder)
    if str(folder) == "":
        raise BandaError(f"{option}: the output folder is empty")
    resolved = folder.resolve()
    if resolved.exists() and not resolved.is_dir():
        raise BandaError(f"{option} {folder}: is a file, not a folder")
    base = _existing_ancestor(resolved)
    if not base.is_dir():
        raise BandaError(f"{option} {folder}: cannot be created, {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise BandaError(f"{option} {folder}: {base} is not writable")
    return resolved


def check_output_file(path: PathLike, inputs: Iterable[PathLike] = (), option: str = "-o") -> Path:
    """Check an output file path before any work: not a folder, not one of ``inputs``,
    its folder writable and its name not too long. Returns the resolved path."""
    from .errors import BandaError

    path = Path(path)
    if str(path) in ("", "."):
        raise BandaError(f"{option}: no output file name given")
    resolved = path.resolve()
    _check_name_lengths(resolved, option)
    if resolved.is_dir():
        raise BandaError(f"{option} {path}: is a folder; give a file name")
    for item in inputs:
        if item is not None and _same_file(resolved, Path(item)):
            raise BandaError(f"{option} {path}: is the input {item}; refusing to overwrite it")
    check_output_dir(resolved.parent, option)
    return resolved


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _check_name_lengths(path: Path, option: str) -> None:
    from .errors import BandaError

    limit = name_max(_existing_ancestor(path.parent))
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > limit:
            raise BandaError(f"{option}: file name {part[:40]!r}... is {len(part.encode('utf-8', 'surrogateescape'))} bytes long, "
                             f"more than the {limit} this file system allows")


def output_under(folder: Path, relative: str, inputs: Iterable[PathLike] = (), what: str = "--filename") -> Path:
    """``folder / relative``, checked to lie strictly inside ``folder`` (resolved, symlinks
    followed), not to be a folder, nor one of ``inputs``, with file names of legal length."""
    from .errors import BandaError

    folder = Path(folder).resolve()
    if not relative or relative.strip() == "":
        raise BandaError(f"{what}: gives an empty file name")
    if os.path.isabs(relative):
        raise BandaError(f"{what}: {relative!r} is an absolute path; it must stay inside the output folder {folder}")
    path = (folder / relative).resolve()
    _check_name_lengths(path, what)
    if path == folder or folder not in path.parents:
        raise BandaError(f"{what}: {relative!r} would be written to {path}, outside the output folder {folder}")
    if path.is_dir():
        raise BandaError(f"{what}: {path} is a folder, not a file")
    for item in inputs:
        if _same_file(path, Path(item)):
            raise BandaError(f"{what}: {path} is the input {item}; refusing to overwrite an input")
    return path


# ------------------------------------------------------------------ reading torch files
def safe_torch_load(path, map_location="cpu", what: str = "model file"):
    """``torch.load(weights_only=True)``: tensors and plain data only, never code.

    A file that holds anything else (a pickled class, a ``__reduce__`` that would run a
    command) is refused with a :class:`BandaError` naming the file; so is an unreadable one.
    """
    import pickle

    import torch

    from .errors import BandaError

    path = Path(path)
    if not path.is_file():
        raise BandaError(f"{path}: {what} not found")
    try:
        # Archives written before banda stored plain strings hold torch's version as a
        # TorchVersion (a str subclass): the one class allowed beyond tensors and plain data.
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # Name the refused global only; torch's own advice (allow-list it, or weights_only=False) is not ours to pass on.
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        if m:
            raise BandaError(f"{path}: refused: the {what} holds more than tensors and plain data (it would call "
                             f"{m.group(1)}); banda never runs code from a model file") from None
        raise BandaError(f"{path}: not a readable {what} (damaged or not a torch file)") from None
    except Exception as e:  # truncated zip, not a torch file at all, ...
        raise BandaError(f"{path}: not a readable {what} ({type(e).__name__}: {_short(e)})") from None


def _short(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__
