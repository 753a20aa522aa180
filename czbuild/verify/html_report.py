"""Render a :class:`VerifyReport` as a small self-contained HTML page with pictures.

For a stem ``nuclei.czann`` (default: the artifact's file name) the folder receives
``nuclei.czann.html`` (pictures inlined as base64, so the page can be mailed or attached to a
ticket), the same pictures as ``nuclei.czann.<picture>.png`` next to it, and the JSON report
``nuclei.czann.json``.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from czbuild.verify.images import encode_png, enlarge
from czbuild.verify.report import VerifyReport

_CAPTIONS = {
    "input": "Sample input (synthetic, in the format's input range)",
    "output": "Packaged model output (stitched from tiles when tiling ran; classes in ZEN's "
    "colours)",
    "seam_error": "Seam error of tiled vs whole-image prediction (blue: tile cuts; "
    "bright: above tolerance)",
}
_STATUS_COLOURS = {
    "passed": "#1a7f37",
    "failed": "#cf222e",
    "warning": "#9a6700",
    "skipped": "#6e7781",
}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#1f2328}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f6f8fa}.status{font-weight:bold}
figure{display:inline-block;margin:0 1.5em 1em 0;vertical-align:top}
img{image-rendering:pixelated;border:1px solid #d0d7de;max-width:22em}
figcaption{font-size:.85em;max-width:22em}code{font-size:.9em}
"""


def write_html_report(
    report: VerifyReport, out_dir: str | os.PathLike[str], stem: str | None = None
) -> list[Path]:
    """Write the HTML page, the PNG pictures and the JSON report of ``report``.

    Args:
        report: A finished report.
        out_dir: Folder to write into (created if missing).
        stem: File name stem (default: the artifact's file name). Reports of artifacts with
            the same file name (variants of one recipe) need distinct stems, see
            ``czbuild.cli.verify_cmds.report_stem``.

    Returns:
        The written files, HTML page first.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or report.path.name
    written: list[Path] = []
    figures: list[str] = []
    for name in ("input", "output", "seam_error"):
        if name not in report.images:
            continue
        data = encode_png(enlarge(report.images[name]))
        png = folder / f"{stem}.{name}.png"
        png.write_bytes(data)
        written.append(png)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        figures.append(
            f'<figure><img src="{uri}" alt="{name}"><figcaption>'
            f"{html.escape(_CAPTIONS[name])}</figcaption></figure>"
        )
    page = folder / f"{stem}.html"
    page.write_text(_page(report, figures), encoding="utf-8")
    report_json = folder / f"{stem}.json"
    report_json.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return [page, *written, report_json]


def _page(report: VerifyReport, figures: list[str]) -> str:
    e = html.escape
    verdict = "OK" if report.ok else "FAILED"
    colour = _STATUS_COLOURS["passed" if report.ok else "failed"]
    counts = ", ".join(f"{n} {s}" for s, n in report.summary().items() if n)
    kind = f"{(report.family or '?').upper()} {report.version or '?'}"
    rows_meta = "".join(
        f"<tr><th>{e(str(k))}</th><td>{e(_fmt(v))}</td></tr>" for k, v in report.metadata.items()
    )
    rows_checks = "".join(
        f'<tr><td><code>{e(c.name)}</code></td><td class=status style="color:'
        f'{_STATUS_COLOURS[c.status]}">{e(c.status)}</td><td>{e(_fmt(c.figure))}</td>'
        f"<td>{e(c.message)}</td></tr>"
        for c in report.checks
    )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>czbuild verify: {e(report.path.name)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{e(report.path.name)}</h1>"
        f'<p>{e(kind)} &middot; <span class=status style="color:{colour}">{verdict}</span>'
        f" &middot; {e(counts)}</p>"
        + ("<h2>Pictures</h2>" + "".join(figures) if figures else "")
        + "<h2>Checks</h2><table><tr><th>check</th><th>status</th><th>figure</th>"
        f"<th>message</th></tr>{rows_checks}</table>"
        + (f"<h2>Metadata</h2><table>{rows_meta}</table>" if rows_meta else "")
        + f"<p><small>{e(str(report.path))}</small></p></body></html>\n"
    )


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)
