"""Run the ``czbuild`` command line in this process (click's ``CliRunner``).

For tests where a fresh process is not the point: no interpreter start, no re-import of
czbuild per call. Tests that check what a process imports, how it reacts to signals, or
what the installed console script does keep using subprocesses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CliResult", "run_cli"]


@dataclass(frozen=True)
class CliResult:
    """What a run printed and its exit code (named like ``subprocess.CompletedProcess``)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path, check: bool = False, **env: str) -> CliResult:
    """Run ``czbuild ARGS`` in ``cwd`` with ``env`` added to the environment.

    Exceptions other than the CLI's own exits propagate (a traceback is a test failure,
    never an exit code to compare).
    """
    from click.testing import CliRunner

    from czbuild.cli import cli

    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, list(args), env=env or None, catch_exceptions=False)
    finally:
        os.chdir(previous)
    out = CliResult(tuple(args), result.exit_code, result.stdout, result.stderr)
    if check and out.returncode != 0:
        raise AssertionError(
            f"czbuild {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
        )
    return out
