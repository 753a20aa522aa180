"""Test doubles for the Ray executor (not a test module).

:func:`kill_once` is the fake backend of :mod:`support.build_fakes` with one more behaviour:
a variant whose fake op says ``kill_once: <marker file>`` kills its worker process (SIGKILL,
as the OOM killer would) the first time it runs -- while the marker does not exist yet -- and
converts normally when retried. The marker lives in the test's temporary folder (the local
Ray cluster of the tests runs on this machine).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from support.build_fakes import fake_convert, fake_of

BACKEND = "support.ray_fakes:kill_once"


def kill_once(job: Any, cache: dict) -> dict:
    """Die on the first attempt of a ``kill_once`` variant, else :func:`fake_convert`."""
    marker = fake_of(job.variant.spec).get("kill_once")
    if marker and not Path(marker).exists():
        Path(marker).write_text(f"{os.getpid()}\n")
        # half an artifact in the worker's scratch folder, then gone (no cleanup runs)
        out = Path(job.out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(f".{out.name}.partial").write_bytes(b"PK half")
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_convert(job, cache)
