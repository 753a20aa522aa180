"""``czbuild inspect`` and ``czbuild unpack``: look into finished model files.

Thin adapters over :func:`czbuild.formats.inspect` and :func:`czbuild.formats.unpack`; no
TensorFlow or ONNX is imported. Errors are :class:`czbuild.errors.CzbuildError` subclasses,
printed by the command group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render_summary(info: dict[str, Any]) -> str:
    """A readable multi-line summary of :func:`czbuild.formats.inspect` output."""
    inferred = " (inferred: no FormatVersion)" if info["version_inferred"] else ""
    version = info["version"] + inferred
    lines = [
        f"{info['path']}",
        f"  family:   {info['family']} {version}",
        f"  id:       {info['id']}",
        (
            f"  payload:  {info['payload']}, {info['payload_size']} bytes, "
            f"sha256 {info['payload_sha256'][:16]}…"
        ),
        f"  file:     {info['size']} bytes, sha256 {info['sha256']}",
        f"  licence:  {info['license'] or '-'}",
    ]
    if not info["extension_matches"]:
        lines.append(
            f"  note:     the file extension does not match its content ({info['family']})"
        )
    lines.append("  metadata:")
    width = max((len(k) for k in info["metadata"]), default=0)
    for key, value in info["metadata"].items():
        lines.append(f"    {key.ljust(width)}  {_format_value(value)}")
    lines.append("  members:")
    name_width = max(len(m["name"]) for m in info["members"])
    for m in info["members"]:
        lines.append(
            f"    {m['name'].ljust(name_width)}  {m['size']:>10}  {m['compression']:<8}  "
            f"{m['date_time']}  {m['mode']}  {m['role']}"
        )
    return "\n".join(lines)


@click.command("inspect")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_cmd(file: Path, as_json: bool) -> None:
    """Show what a .czann / .czmodel / .czseg FILE contains (no TensorFlow needed)."""
    from czbuild.formats import archive  # the zip reader only when a command reads a file

    info = archive.inspect(file)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=False))
    else:
        click.echo(render_summary(info))


@click.command("unpack")
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def unpack_cmd(file: Path, directory: Path) -> None:
    """Extract the members of FILE into DIR (never writes outside DIR)."""
    from czbuild.formats import archive

    for path in archive.unpack(file, directory):
        click.echo(str(path))
