"""Run a script in a fresh interpreter, for checks that a result does not depend on the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]


def run_fresh_python(script: str | Path, *args: object, cwd: Path, **env: str) -> str:
    """Run ``script`` in a fresh interpreter with this checkout importable; return its stdout.

    ``env`` entries (e.g. ``PYTHONHASHSEED="7"``, ``TZ="Asia/Tokyo"``) are added to the
    environment so the child differs from the test process in what it should not depend on.
    """
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(REPO_DIR), **env),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
