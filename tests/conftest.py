"""Shared pytest setup: quiet TensorFlow, seeded tiny models, temporary projects."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def run_fresh_python(script, *args, cwd, **env):
    """Run ``script`` in a fresh interpreter with this checkout importable; return its stdout.

    ``env`` entries (e.g. ``PYTHONHASHSEED="7"``, ``TZ="Asia/Tokyo"``) are added to the
    environment so the child differs from the test process in what it should not depend on.
    """
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(repo), **env),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
