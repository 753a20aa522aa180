"""The build layer: recipe variants -> doit tasks -> artifacts, incrementally and crash-safe.

Public API (none of it imports TensorFlow; conversions run in worker subprocesses):

* :func:`build`, :func:`status`, :func:`clean` and :class:`BuildOptions` / :class:`BuildReport`;
* :class:`BuildSession` and :func:`task_creators` / :func:`doit_config` for ``dodo.py``;
* :func:`compute_fingerprint`, :class:`VariantStatus` / :class:`Reason` (``czbuild status``);
* stamps (:func:`read_stamp`, :func:`iter_stamps`) and the manifest (:func:`render_manifest`),
  the seams the release lock file builds on.

See docs/building.md.
"""

from czbuild.builder.fingerprint import Fingerprint, InputRecord, compute_fingerprint
from czbuild.builder.hashing import HashCache
from czbuild.builder.manifest import manifest_path, render_manifest, write_manifest
from czbuild.builder.runner import BuildReport, build, clean, status
from czbuild.builder.session import BuildOptions, BuildSession
from czbuild.builder.stamps import ArtifactRecord, iter_stamps, read_stamp, stamp_path
from czbuild.builder.status import Reason, VariantStatus
from czbuild.builder.tasks import doit_config, task_creators
from czbuild.builder.toolchain import toolchain_versions

__all__ = [
    "ArtifactRecord",
    "BuildOptions",
    "BuildReport",
    "BuildSession",
    "Fingerprint",
    "HashCache",
    "InputRecord",
    "Reason",
    "VariantStatus",
    "build",
    "clean",
    "compute_fingerprint",
    "doit_config",
    "iter_stamps",
    "manifest_path",
    "read_stamp",
    "render_manifest",
    "stamp_path",
    "status",
    "task_creators",
    "toolchain_versions",
    "write_manifest",
]
