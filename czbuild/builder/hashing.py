"""Content hashes of build inputs and outputs, with a stat-based shortcut.

A no-op build must not re-read a 30 MB model or a SavedModel tree on every run, yet
``touch`` without a content change must not trigger a rebuild. :class:`HashCache` keeps, per
absolute file path, the stat signature ``(size, mtime_ns, inode, ctime_ns)`` seen when the
file was last hashed together with its sha256. A file whose signature is unchanged is not
re-read; any change (including ``touch``) re-reads it, and equal content gives the same hash.

Entries for files modified within :data:`RACY_WINDOW_NS` of hashing are not trusted (a
second write in the same timestamp tick would otherwise go unnoticed on coarse file systems).

A directory (a SavedModel) is hashed as a tree by :func:`czbuild.files.tree_sha256`, with
each file's hash answered from the cache. :meth:`HashCache.content_sha256` gives the
*content* digest of a model file (:mod:`czbuild.files.content`: a re-saved but unchanged
``.keras`` / ``.h5`` / SavedModel keeps it), remembered by the same stat signature.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

from czbuild.files.canonical import read_json, write_json
from czbuild.files.content import CONTENT_KINDS, content_kind
from czbuild.files.content import content_sha256 as _content_sha256
from czbuild.files.digest import file_sha256, tree_sha256

RACY_WINDOW_NS = 2_000_000_000
_FORMAT = 2  # 2: content digests of model files
_shared: dict[str, HashCache] = {}
_shared_lock = threading.Lock()


def _signature(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


class HashCache:
    """sha256 of files and directory trees, remembered by stat signature.

    Thread-safe. Persisted as JSON at ``path`` by :meth:`save` (atomically); a missing or
    unreadable cache file just means everything is hashed again.

    Args:
        path: Where the cache lives (``<out>/.czbuild/hashcache.json``), or None for an
            in-memory cache.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._dirty = False
        self._entries: dict[str, list] = {}
        self._content: dict[str, list] = {}
        self.reads = 0  # files actually read (for tests and benchmarks)
        if path is not None:
            data = read_json(path)
            if isinstance(data, dict) and data.get("format") == _FORMAT:
                entries = data.get("entries")
                if isinstance(entries, dict):
                    self._entries = entries
                content = data.get("content")
                if isinstance(content, dict):
                    self._content = content

    @classmethod
    def shared(cls, path: Path) -> HashCache:
        """The process-wide cache for ``path`` (one instance per file, so one load and save)."""
        key = os.path.abspath(path)
        with _shared_lock:
            instance = _shared.get(key)
            if instance is None:
                instance = _shared[key] = cls(Path(key))
            return instance

    def file_sha256(self, path: Path | str) -> str:
        """sha256 of one file, re-reading it only if its stat signature changed.

        Raises:
            FileNotFoundError: The file does not exist.
            IsADirectoryError: ``path`` is a directory.
        """
        key = os.path.abspath(path)
        return self._file_sha256(key, os.stat(key))

    def _file_sha256(self, key: str, st: os.stat_result) -> str:
        """:meth:`file_sha256` of the absolute path ``key`` whose ``os.stat`` is ``st``."""
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(key)
        sig = _signature(st)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] == sig and entry[2]:
            return entry[1]
        digest = file_sha256(key)
        trusted = time.time_ns() - st.st_mtime_ns > RACY_WINDOW_NS
        with self._lock:
            self.reads += 1
            self._entries[key] = [sig, digest, trusted]
            self._dirty = True
        return digest

    def tree_sha256(self, root: Path) -> str:
        """sha256 of a directory tree: sorted relative paths and the sha256 of each file."""
        return tree_sha256(root, file_hash=self.file_sha256)

    def path_sha256(self, path: Path) -> str:
        """sha256 of a file, or the tree hash of a directory.

        Raises:
            FileNotFoundError: ``path`` does not exist.
        """
        if os.path.isdir(path):
            return self.tree_sha256(Path(path))
        return self.file_sha256(Path(path))

    def content_sha256(self, path: Path | str) -> str:
        """The content digest of a model file or folder (:func:`czbuild.files.content_sha256`).

        A ``.keras`` / ``.h5`` file is re-read only when its stat signature changed; a
        SavedModel's files and any other path go through :meth:`file_sha256`.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: A ``.keras`` / ``.h5`` file is not a valid archive / HDF5 file.
        """
        key = os.path.abspath(path)
        st = os.stat(key)
        if stat.S_ISREG(st.st_mode):  # the common case, answered from one stat
            if CONTENT_KINDS.get(os.path.splitext(key)[1].lower()) is None:
                return self._file_sha256(key, st)
        elif content_kind(key) not in ("keras", "h5"):
            return _content_sha256(key, file_hash=self.file_sha256)
        sig = _signature(st)
        with self._lock:
            entry = self._content.get(key)
        if entry is not None and entry[0] == sig and entry[2]:
            return entry[1]
        digest = _content_sha256(key)
        trusted = time.time_ns() - st.st_mtime_ns > RACY_WINDOW_NS
        with self._lock:
            self.reads += 1
            self._content[key] = [sig, digest, trusted]
            self._dirty = True
        return digest

    def forget(self, path: Path) -> None:
        """Drop the entry of one file (used after the build replaces an artifact)."""
        with self._lock:
            if self._entries.pop(os.path.abspath(path), None) is not None:
                self._dirty = True

    def save(self) -> None:
        """Write the cache atomically if anything changed; entries of vanished files are pruned."""
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            entries = {k: v for k, v in self._entries.items() if os.path.exists(k)}
            content = {k: v for k, v in self._content.items() if os.path.exists(k)}
            self._dirty = False
        write_json(
            self.path, {"format": _FORMAT, "entries": entries, "content": content}, durable=False
        )
