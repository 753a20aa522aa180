"""Bytes on disk: content digests, atomic file replacement, canonical JSON forms.

The lowest layer of czbuild after :mod:`czbuild.errors` (it imports nothing else), so every
other layer can share one implementation of each:

* :mod:`czbuild.files.digest` — :func:`file_sha256`, :func:`tree_sha256` (what a recipe's
  ``model.sha256`` pins for a directory), :func:`path_sha256`;
* :mod:`czbuild.files.atomic` — :func:`atomic_write` (temporary file + rename, optionally
  durable) and :func:`fsync_dir`;
* :mod:`czbuild.files.canonical` — the two canonical JSON forms: :func:`digest_json` (the
  compact text hashed into spec digests) and :func:`file_json` (the indented bytes of stamps,
  the manifest and other state files), plus :func:`write_json` / :func:`read_json`;
* :mod:`czbuild.files.content` — :func:`content_sha256`, the content digest of a model
  (``.keras`` config + weights, HDF5 datasets + attributes, SavedModel tree without
  ``fingerprint.pb``): what the build fingerprints for model files;
* :mod:`czbuild.files.scratch` — temporary names and scratch folders tagged with the owner's
  PID, and the sweep of those whose owner died.
"""

from __future__ import annotations

from czbuild.files.atomic import atomic_write, fsync_dir
from czbuild.files.canonical import digest_json, file_json, read_json, write_json
from czbuild.files.content import content_sha256
from czbuild.files.digest import file_sha256, path_sha256, tree_sha256

__all__ = [
    "atomic_write",
    "content_sha256",
    "digest_json",
    "file_json",
    "file_sha256",
    "fsync_dir",
    "path_sha256",
    "read_json",
    "tree_sha256",
    "write_json",
]
