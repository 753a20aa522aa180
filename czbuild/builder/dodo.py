"""What ``dodo.py`` imports: ``DOIT_CONFIG`` and the task creators for plain ``doit`` runs.

``doit`` runs with the dodo file's folder as the working directory, which is the project
folder. Selection and options come as doit command-line variables (doit reads ``a=b`` words
as variables, so they cannot be Hydra overrides directly)::

    doit                                   # build every recipe variant (sequentially)
    doit -n 2                              # two conversions at once (threads + 2 workers)
    doit recipes=nuclei overrides="tile=256,512" out=build
    doit verify=0                          # like czbuild build --no-verify
    doit -n 8 ray=auto                     # conversions on a Ray cluster (czbuild build --ray)
    doit list --all ; doit info build:nuclei@tile:512 ; doit clean ; doit forget

``doit clean`` removes artifacts and their stamps. ``doit forget`` clears doit's own records
only: czbuild's stamps decide what is up to date, so use ``doit force=1`` or
``czbuild build --force`` to rebuild up-to-date artifacts.
"""

from __future__ import annotations

import atexit
import os
import shlex
import sys
from pathlib import Path

from doit import get_var

from czbuild.builder.session import BuildOptions, BuildSession
from czbuild.builder.tasks import doit_config, task_creators

__all__ = ["DOIT_CONFIG", "task_build", "task_manifest"]

_PROJECT_DIR = Path.cwd()
_OUT_DIR = (_PROJECT_DIR / (get_var("out") or "build")).absolute()


def _doit_jobs(argv: list[str]) -> int:
    """The ``-n/--process`` value doit was started with (1 if absent)."""
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-n", "--process") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--process="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-n") and arg[2:].isdigit():
            value = arg[2:]
        if value is not None and value.isdigit():
            return max(1, int(value))
    return 1


def _ray_address() -> str | None:
    """``ray=ADDRESS`` (else ``$CZBUILD_RAY_ADDRESS``): run the conversions on Ray."""
    from czbuild.builder.ray_executor import ADDRESS_ENV, require_ray

    address = get_var("ray") or os.environ.get(ADDRESS_ENV) or None
    if address:
        require_ray()
    return address


DOIT_CONFIG = doit_config(_OUT_DIR)
_session: BuildSession | None = None


def _get_session() -> BuildSession:
    global _session
    if _session is None:
        from czbuild.builder.stamps import state_dir
        from czbuild.builder.variants import load

        names = shlex.split(get_var("recipes") or "")
        overrides = shlex.split(get_var("overrides") or "")
        variants = load(names, overrides, _PROJECT_DIR, cache_dir=state_dir(_OUT_DIR))
        options = BuildOptions(
            out_dir=_OUT_DIR,
            jobs=_doit_jobs(sys.argv[1:]),
            force=(get_var("force") or "") not in ("", "0"),
            debug=os.environ.get("CZBUILD_DEBUG", "") not in ("", "0"),
            verify=(get_var("verify") or "1").lower() not in ("0", "false", "no"),
            ray=_ray_address(),
        )
        _session = BuildSession(variants, options)
        atexit.register(_session.close)
    return _session


task_build, task_manifest = task_creators(_get_session)
