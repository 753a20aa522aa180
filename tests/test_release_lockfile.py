"""czbuild.lock: canonical text, round trip, merge rules, and errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from czbuild.release.lockfile import (
    NUMERIC,
    LockedMember,
    LockEntry,
    LockFile,
    LockFileError,
    parse_lock,
    read_lock,
    render_lock,
    update_lock,
)


def _entry(name: str, *, sha: str = "a" * 64, numeric: bool = False) -> LockEntry:
    members = (
        LockedMember("model.json", "1" * 64, 180, "1980-01-01 00:00:00", "0o100644", "stored"),
        LockedMember(
            "model.model",
            "2" * 64,
            4000,
            "1980-01-01 00:00:00",
            "0o100644",
            "stored",
            NUMERIC if numeric else "bytes",
        ),
    )
    return LockEntry(
        variant=name,
        recipe=name.split("@")[0],
        recipe_file=f"recipes/{name.split('@')[0]}.yaml",
        spec_digest="d" * 64,
        inputs={"models/m.py": "e" * 64, "LICENSE": "f" * 64},
        toolchain={"tensorflow": "2.21.0", "python": "3.11", "czbuild": "0.1.0"},
        path=f"{name.split('@')[0]}/default/x.czann",
        sha256=sha,
        size=4321,
        members=members,
    )


def test_round_trip_is_exact_and_stable() -> None:
    lock = LockFile({"b": _entry("b"), "a@tile=2": _entry("a@tile=2", numeric=True)})
    text = render_lock(lock)
    parsed = parse_lock(text)
    assert parsed == LockFile({"a@tile=2": _entry("a@tile=2", numeric=True), "b": _entry("b")})
    assert render_lock(parsed) == text
    # insertion order does not matter
    assert render_lock(LockFile(dict(reversed(list(lock.entries.items()))))) == text


def test_text_is_diff_friendly() -> None:
    text = render_lock(LockFile({"n": _entry("n", numeric=True)}))
    assert text.endswith("}\n") and text.isascii()
    lines = text.splitlines()
    member_lines = [line for line in lines if '"name": "model.' in line]
    assert len(member_lines) == 2  # one line per member, name first
    assert member_lines[0].strip().startswith('{"name": "model.json", "sha256": ')
    assert '"reproducible": "numeric"' in member_lines[1]
    assert '"reproducible"' not in member_lines[0]  # the default is not written
    data = json.loads(text)
    assert list(data) == sorted(data) and data["format"] == 1
    # members keep archive order, everything else is sorted
    assert [m["name"] for m in data["variants"]["n"]["artifact"]["members"]] == [
        "model.json",
        "model.model",
    ]
    assert list(data["variants"]["n"]["inputs"]) == ["LICENSE", "models/m.py"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("{not json", "not valid JSON", id="invalid-json"),
        pytest.param('{"format": 7, "variants": {}}', "format: 7 is not supported", id="format"),
        pytest.param('{"format": 1}', "variants: missing", id="no-variants"),
        pytest.param(
            '{"format": 1, "variants": {"v": {"recipe": "v"}}}',
            "variants.v.artifact: missing",
            id="missing-key",
        ),
        pytest.param(
            '{"format": "1", "variants": {}}', "format: expected int, got str", id="wrong-type"
        ),
    ],
)
def test_parse_errors_name_the_key(text: str, expected: str) -> None:
    with pytest.raises(LockFileError, match="czbuild.lock") as info:
        parse_lock(text)
    assert expected in str(info.value)


def test_bad_member_policy_is_rejected() -> None:
    data = json.loads(render_lock(LockFile({"v": _entry("v")})))
    data["variants"]["v"]["artifact"]["members"][1]["reproducible"] = "maybe"
    with pytest.raises(LockFileError, match=r"variants\.v\.artifact\.members\[1\]\.reproducible"):
        parse_lock(json.dumps(data))


def test_missing_file_is_an_empty_lock(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "czbuild.lock") == LockFile()


def test_update_adds_changes_keeps_and_removes(tmp_path: Path) -> None:
    path = tmp_path / "czbuild.lock"
    first = update_lock(path, [_entry("a"), _entry("b"), _entry("c")])
    assert first.added == ("a", "b", "c") and first.written
    # a partial build: only "a" changes, the others stay
    second = update_lock(path, [_entry("a", sha="9" * 64)])
    assert second.changed == ("a",) and second.removed == ()
    assert set(read_lock(path).entries) == {"a", "b", "c"}
    # a full build in which "c" no longer exists
    third = update_lock(path, [_entry("a", sha="9" * 64), _entry("b")], keep=["a", "b"])
    assert third.removed == ("c",) and third.unchanged == ("a", "b")
    assert set(read_lock(path).entries) == {"a", "b"}


def test_unchanged_lock_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "czbuild.lock"
    update_lock(path, [_entry("a")])
    before = path.stat()
    again = update_lock(path, [_entry("a")])
    after = path.stat()
    assert not again.written and not again.modified
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_nothing_to_record_creates_no_file(tmp_path: Path) -> None:
    update = update_lock(tmp_path / "czbuild.lock", [])
    assert not update.written and not (tmp_path / "czbuild.lock").exists()
