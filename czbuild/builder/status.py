"""Why an artifact is (not) up to date: compare a variant's fingerprint with its stamp.

The result names every reason in words a user can act on: the dotted spec keys whose values
changed (with old and new value), which input changed, which version changed, and whether
the output is missing or was modified after the build.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from czbuild.builder.fingerprint import Fingerprint
from czbuild.builder.hashing import HashCache
from czbuild.builder.toolchain import ZIP_TIME_KEY

_MAX_SPEC_REASONS = 8
_MAX_VALUE_CHARS = 48


@dataclass(frozen=True)
class Reason:
    """One reason an artifact is out of date.

    Attributes:
        kind: Machine-readable category: ``never-built``, ``spec``, ``input``,
            ``input-missing``, ``czbuild-version``, ``czbuild-code`` (czbuild's artifact
            code changed), ``toolchain``, ``output-missing``, ``output-modified``.
        message: One human-readable line.
    """

    kind: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class VariantStatus:
    """Whether one variant's artifact is up to date, and if not, why.

    Attributes:
        variant: The variant name.
        output: The artifact path relative to the output folder.
        reasons: Why it is out of date (empty: up to date).
        verified: Whether its stamp records a passed verification; None without a stamp.
            An artifact built with ``--no-verify`` is up to date but not verified.
    """

    variant: str
    output: str
    reasons: tuple[Reason, ...]
    verified: bool | None = None
    warnings: tuple[CheckWarning, ...] = ()

    @property
    def up_to_date(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "output": self.output,
            "up_to_date": self.up_to_date,
            "verified": self.verified,
            "reasons": [r.to_json() for r in self.reasons],
            "warnings": [w.to_json() for w in self.warnings],
        }


@dataclass(frozen=True)
class CheckWarning:
    """A verification check that ended in a warning: it passed, but the user should know.

    Attributes:
        check: The check name (``tiling.seams``).
        figure: Its headline figure (``per-tile statistics 0.17``), or "".
        message: The check's sentence.
        accepted: The recipe accepts this check by name (``verify.accept``), so
            ``czbuild release`` does not refuse the artifact for it.
    """

    check: str
    figure: str
    message: str
    accepted: bool = False

    def line(self) -> str:
        """``tiling.seams (per-tile statistics 0.17): <message>`` on one line."""
        figure = f" ({self.figure})" if self.figure else ""
        accepted = " [accepted by verify.accept]" if self.accepted else ""
        text = " ".join(self.message.split())
        return f"{self.check}{figure}{accepted}: {text}"

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "figure": self.figure,
            "message": self.message,
            "accepted": self.accepted,
        }


def record_warnings(
    record: Mapping[str, Any] | None, accept: Iterable[str] = ()
) -> tuple[CheckWarning, ...]:
    """The warnings of a verification record (a stamp's ``verification``), in check order.

    A warning is *accepted* when the recipe lists its check in ``verify.accept`` (``accept``,
    or the ``settings.accept`` the record was made with), or when the verifier marked it so
    (an accepted failure).
    """
    if not isinstance(record, Mapping):
        return ()
    settings = record.get("settings")
    accepted = set(accept)
    if isinstance(settings, Mapping) and isinstance(settings.get("accept"), list):
        accepted.update(str(n) for n in settings["accept"])
    found = []
    for check in record.get("checks") or []:
        if not isinstance(check, Mapping) or check.get("status") != "warning":
            continue
        name = str(check.get("name") or "?")
        details = check.get("details")
        marked = isinstance(details, Mapping) and details.get("accepted") is True
        figure = check.get("figure")
        found.append(
            CheckWarning(
                check=name,
                figure="" if figure is None else str(figure),
                message=str(check.get("message") or ""),
                accepted=marked or name in accepted,
            )
        )
    return tuple(found)


def stamp_verified(stamp: Mapping[str, Any] | None) -> bool | None:
    """Whether ``stamp`` records a passed verification (None when there is no stamp)."""
    if stamp is None:
        return None
    record = stamp.get("verification")
    return isinstance(record, Mapping) and bool(record.get("ok"))


def compare(
    fingerprint: Fingerprint,
    stamp: Mapping[str, Any] | None,
    artifact_path: Path,
    cache: HashCache,
) -> tuple[Reason, ...]:
    """All reasons why the artifact of ``fingerprint`` must be rebuilt (empty: up to date).

    Args:
        fingerprint: The variant's current fingerprint.
        stamp: Its stamp from the last successful build, or None.
        artifact_path: Absolute path of the artifact.
        cache: Hash cache used to check the artifact's content cheaply.
    """
    reasons: list[Reason] = [
        Reason("input-missing", f"{i.role} missing: {i.path}") for i in fingerprint.missing_inputs
    ]
    if stamp is None:
        if artifact_path.exists():
            reasons.append(
                Reason(
                    "never-built",
                    "no build record for the existing output "
                    "(an interrupted build, or not built by czbuild)",
                )
            )
        else:
            reasons.append(Reason("never-built", "never built"))
        return tuple(reasons)

    if stamp.get("spec_digest") != fingerprint.spec_digest:
        reasons.extend(_spec_reasons(stamp.get("spec") or {}, fingerprint.spec))
    reasons.extend(_input_reasons(stamp.get("inputs") or [], fingerprint))
    reasons.extend(_version_reasons(stamp.get("toolchain") or {}, fingerprint.toolchain))
    old_code = stamp.get("czbuild_code")
    if old_code != fingerprint.czbuild_code and not any(
        r.kind == "czbuild-version" for r in reasons
    ):
        reasons.append(
            Reason(
                "czbuild-code",
                "czbuild changed: the code that writes artifacts differs from the build's "
                f"(code digest {str(old_code or '<none>')[:12]} -> "
                f"{fingerprint.czbuild_code[:12]})",
            )
        )
    if stamp.get("output") != fingerprint.output:
        reasons.append(Reason("output-missing", f"output path changed to {fingerprint.output}"))
    reasons.extend(_output_reasons(stamp, artifact_path, fingerprint.output, cache))
    return tuple(reasons)


def spec_diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ between two JSON values, with (old, new).

    Mappings recurse by key; lists of equal length recurse by index (``key[1]``); anything
    else is compared as a whole. A missing side is reported as ``<unset>``.
    """
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        diffs: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            diffs.extend(spec_diff(old.get(key, _UNSET), new.get(key, _UNSET), path))
        return diffs
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        diffs = []
        for index, (a, b) in enumerate(zip(old, new)):
            diffs.extend(spec_diff(a, b, f"{prefix}[{index}]"))
        return diffs
    if old == new and type(old) is type(new):
        return []
    return [(prefix or "<spec>", old, new)]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


def _short(value: Any) -> str:
    text = "<unset>" if value is _UNSET else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _spec_reasons(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Reason]:
    diffs = spec_diff(old, new)
    if not diffs:
        return [Reason("spec", "resolved spec changed (digest differs)")]
    reasons = [
        Reason("spec", f"spec value {key} changed: {_short(a)} -> {_short(b)}")
        for key, a, b in diffs[:_MAX_SPEC_REASONS]
    ]
    if len(diffs) > _MAX_SPEC_REASONS:
        reasons.append(Reason("spec", f"... and {len(diffs) - _MAX_SPEC_REASONS} more spec values"))
    return reasons


def _input_reasons(old_inputs: list[Mapping[str, Any]], fp: Fingerprint) -> list[Reason]:
    old = {(i.get("role"), i.get("path")): i.get("sha256") for i in old_inputs}
    new = {(i.role, i.path): i.sha256 for i in fp.inputs}
    recorded = {(i.role, i.path) for i in fp.inputs if i.recorded}
    reasons = []
    for key in sorted(set(old) | set(new), key=lambda k: (str(k[1]), str(k[0]))):
        role, path = key
        if key in recorded:  # found by the worker: "input changed: w.keras (read by ...)"
            if new[key] is None:
                reasons.append(Reason("input", f"input missing: {path} ({role})"))
            elif old.get(key) != new[key]:
                reasons.append(Reason("input", f"input changed: {path} ({role})"))
        elif key not in old:
            reasons.append(Reason("input", f"{role} added: {path}"))
        elif key not in new:
            reasons.append(Reason("input", f"{role} no longer used: {path}"))
        elif new[key] is not None and old[key] != new[key]:
            reasons.append(Reason("input", f"{role} changed: {path}"))
    return reasons


def _version_reasons(old: Mapping[str, str], new: Mapping[str, str]) -> list[Reason]:
    reasons = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, "<none>"), new.get(name, "<none>")
        if before == after:
            continue
        if name == ZIP_TIME_KEY:
            reasons.append(
                Reason(
                    "toolchain",
                    "zip entry time (SOURCE_DATE_EPOCH) changed: "
                    f"{old.get(name, 'default')} -> {new.get(name, 'default')}",
                )
            )
        else:
            kind = "czbuild-version" if name == "czbuild" else "toolchain"
            reasons.append(Reason(kind, f"{name} version changed: {before} -> {after}"))
    return reasons


def _output_reasons(
    stamp: Mapping[str, Any], artifact_path: Path, output: str, cache: HashCache
) -> list[Reason]:
    try:
        actual = cache.file_sha256(artifact_path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return [Reason("output-missing", f"output missing: {output}")]
    recorded = (stamp.get("artifact") or {}).get("sha256")
    if actual != recorded:
        return [Reason("output-modified", f"output modified since it was built: {output}")]
    return []
