"""The ``czbuild`` command line: a thin adapter over the library.

Each command group lives in its own module and is registered in :data:`_COMMAND_MODULES`.
Errors derived from :class:`czbuild.errors.CzbuildError` print one line and exit with the
error's exit code; ``--debug`` (or ``CZBUILD_DEBUG=1``) shows the traceback instead.
This module must not import TensorFlow: ``czbuild --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from czbuild.cli.options import debug_enabled
from czbuild.errors import CzbuildError

__all__ = ["cli", "debug_enabled", "main"]

# module name -> command attribute names it defines
_COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "czbuild.cli.artifact_cmds": ("inspect_cmd", "unpack_cmd"),
    "czbuild.cli.convert_cmd": ("convert_cmd",),
    "czbuild.cli.recipe_cmds": ("list_cmd", "show_cmd", "schema_cmd"),
    "czbuild.cli.build_cmds": ("build_cmd", "status_cmd", "clean_cmd"),
    "czbuild.cli.verify_cmds": ("verify_cmd",),
    "czbuild.cli.release_cmds": ("release_cmd", "check_cmd"),
    "czbuild.cli.predict_cmd": ("predict_cmd",),
    "czbuild.cli.init_cmd": ("init_cmd",),
}


def _quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and Python log noise before it is (lazily) imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


class _Group(click.Group):
    """Turns every error into a one-line message and a non-zero exit code.

    A :class:`CzbuildError` prints its message and exits with its code; an ``OSError`` (a full
    disk, a read-only folder) names the file; anything else is a czbuild bug, said as such.
    ``--debug`` shows the traceback instead; without it none is ever printed.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except CzbuildError as exc:
            if debug_enabled(ctx):
                raise
            click.echo(f"czbuild: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("czbuild: interrupted", err=True)
            ctx.exit(130)
        except OSError as exc:
            if debug_enabled(ctx):
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"czbuild: error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(1)
        except Exception as exc:
            if debug_enabled(ctx):
                raise
            text = " ".join(str(exc).split())[:300]
            click.echo(
                f"czbuild: internal error: {type(exc).__name__}: {text} (a czbuild bug; "
                "run with --debug for the traceback and report it)",
                err=True,
            )
            ctx.exit(70)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.version_option(package_name="czbuild")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """czbuild: build ZEISS ZEN Intellesis model files (.czann / .czmodel) from Keras models."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _quiet_tensorflow()
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("czbuild").setLevel(level)


def _register() -> None:
    """Add every command of :data:`_COMMAND_MODULES` to :func:`cli`.

    A command module that fails to import, or lacks a listed command, is a packaging bug:
    it raises here (naming the module) instead of leaving the command silently missing.
    """
    for module_name, attrs in _COMMAND_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(
                f"czbuild: command module {module_name} failed to import ({exc}); "
                "reinstall czbuild or report a bug"
            ) from exc
        for attr in attrs:
            command = getattr(module, attr, None)
            if not isinstance(command, click.Command):
                raise ImportError(f"czbuild: {module_name} defines no command {attr!r}")
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="czbuild", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
