"""What a model source reads while it loads: files opened and local modules imported.

A factory (``models/net.py:build``) usually loads its weights from a file the recipe never
names (``keras.models.load_model("weights/net.keras")``) and may import helper modules
beside it. Those files decide the artifact's bytes as much as the factory itself, so the
conversion worker records them while the model source (and its custom-object files) load:

* every regular file opened for reading, from a Python audit hook on ``open`` events
  (PEP 578: ``open()``, ``os.open``, ``io.open_code``);
* the source file of every module that was imported during the load (new entries of
  ``sys.modules``): a module whose byte-code was cached opens only the ``.pyc``.

Left out: the interpreter's trees (``sys.prefix``, ``sys.base_prefix``, the standard library,
site-packages, the user site), temporary files, czbuild's own package, ``__pycache__``
files, the build's output folder and ``/dev``, ``/proc``, ``/sys`` -- except that a file
inside the project folder is always kept (a project may itself live in the temporary
folder), unless it is in the output folder. The result is sorted and
deterministic; the worker sends it back with the job result and the build records each
file as an input of the variant (:mod:`czbuild.builder.fingerprint`).

The audit hook is installed once per process (hooks cannot be removed) and does nothing
unless a :class:`ReadRecorder` is active on the calling thread's process.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

__all__ = ["IMPORTED", "READ", "ReadRecorder", "excluded_roots"]

READ = "read by the model source"
IMPORTED = "imported by the model source"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_active: list[ReadRecorder] = []
_hook_lock = threading.Lock()
_hook_installed = False
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or not _active:
        return
    path, mode = args[0], args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if isinstance(mode, str):
        if any(c in mode for c in "wax+"):
            return
    elif isinstance(flags, int) and flags & _WRITE_FLAGS:
        return
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):  # a file descriptor
        return
    for recorder in _active:
        recorder._opened.add(os.path.abspath(path))


def _install_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True


def excluded_roots(extra: Iterable[str | os.PathLike[str]] = ()) -> tuple[str, ...]:
    """Folders whose files are never recorded (see the module docstring)."""
    roots = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        tempfile.gettempdir(),
        _PACKAGE_DIR,
        "/dev",
        "/proc",
        "/sys",
    }
    roots.update(p for p in sysconfig.get_paths().values() if p)
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site module
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        roots.add(user_site)
    roots.update(os.fspath(p) for p in extra)
    return tuple(sorted({os.path.realpath(r) for r in roots if r}))


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class ReadRecorder:
    """Context manager recording the files read and local modules imported inside it.

    Args:
        exclude: Further folders to leave out, even inside the project (the build's output
            folder).
        project_dir: The project folder: files inside it are kept unless under ``exclude``.

    After the ``with`` block, :attr:`inputs` holds ``(role, absolute path)`` pairs, sorted:
    :data:`READ` for files opened for reading, :data:`IMPORTED` for local modules.
    """

    def __init__(
        self,
        exclude: Iterable[str | os.PathLike[str]] = (),
        project_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._forced = tuple(sorted({os.path.realpath(p) for p in exclude}))
        self._roots = excluded_roots(self._forced)
        self._project = (os.path.realpath(project_dir),) if project_dir is not None else ()
        self._opened: set[str] = set()
        self._modules_before: set[str] = set()
        self.inputs: tuple[tuple[str, str], ...] = ()

    def __enter__(self) -> ReadRecorder:
        _install_hook()
        self._modules_before = set(sys.modules)
        _active.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _active.remove(self)
        modules = set()
        for name in set(sys.modules) - self._modules_before:
            file = getattr(sys.modules.get(name), "__file__", None)
            if isinstance(file, str) and file.endswith(".py"):
                modules.add(os.path.abspath(file))
        found: dict[str, str] = {}
        for path in sorted(modules):
            if self._keep(path):
                found[path] = IMPORTED
        for path in sorted(self._opened):
            if path not in found and self._keep(path):
                found[path] = READ
        self.inputs = tuple(sorted((role, path) for path, role in found.items()))

    def _keep(self, path: str) -> bool:
        real = os.path.realpath(path)
        if "__pycache__" in Path(real).parts or real.endswith((".pyc", ".pyo")):
            return False
        # czbuild's own code never counts, even when the project folder holds the package
        # (czbuild's repository builds its bundled recipes): it is fingerprinted separately.
        if _inside(real, self._forced) or _inside(real, (_PACKAGE_DIR,)):
            return False
        if not _inside(real, self._project) and _inside(real, self._roots):
            return False
        return os.path.isfile(real)
