"""Hostile-input corpus: recipes and overrides that must fail fast with one line, no traceback.

Every case is generated here (small on disk, no TensorFlow). Each asserts a RecipeError naming
the file (and the key where there is one) from the library, and, through the CLI, a non-zero
exit with one ``czbuild: error:`` line and no traceback. The bounds are in
``czbuild.recipe.limits`` and docs/recipes.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from czbuild.cli import cli
from czbuild.errors import RecipeError
from czbuild.recipe import limits, list_recipes, load_variants

HEAD = "model: {factory: ../models/m.py:build}\nformat: czann\ntile: 64\n"
META = "metadata: {type: SingleClassSemanticSegmentation, classes: [bg, fg]}\n"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.py").write_text("def build():\n    raise NotImplementedError\n")
    (tmp_path / "recipes" / "ok.yaml").write_text(HEAD + META)
    return tmp_path


def _write(project: Path, name: str, text: str) -> str:
    (project / "recipes" / f"{name}.yaml").write_text(text)
    return name


def _alias_bomb(levels: int = 9, width: int = 10) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return HEAD + META + "\n".join(lines) + "\n"


def _nested(depth: int) -> str:
    return HEAD + META + "extra: " + "[" * depth + "]" * depth + "\n"


# (case id, recipe text, key named in the message or None, fragment of the message)
CASES = [
    ("alias_bomb", _alias_bomb(), None, "aliases '*name' repeat"),
    ("deep_nesting_parser", _nested(20_000), None, "nested too deeply"),
    ("deep_nesting", _nested(limits.MAX_NESTING + 5), "extra", "levels deep"),
    (
        "python_tag",
        HEAD + META + "extra: !!python/object/apply:os.system ['echo pwned']\n",
        "extra",
        "YAML tags are not allowed",
    ),
    ("custom_tag", HEAD + META + "extra: !include other.yaml\n", "extra", "YAML tags"),
    (
        "huge_integer",
        "model: {factory: ../models/m.py:build}\nformat: czann\ntile: " + "9" * 5000 + "\n" + META,
        "tile",
        "5000 digits is too large",
    ),
    ("null_key", "null: 3\n" + HEAD + META, None, "key 'null' is not a name"),
    ("tilde_key", "~: 3\n" + HEAD + META, None, "is not a name"),
    (
        "metadata_list_over_group",
        "defaults: [/metadata: lab-defaults, _self_]\n" + HEAD + "metadata: [a, b]\n",
        "metadata",
        "expected a mapping",
    ),
    (
        "model_scalar",
        "model: m.keras\nformat: czann\ntile: 64\n" + META,
        "model",
        "expected a mapping",
    ),
    (
        "sweep_too_big",
        HEAD + META + "sweep:\n  tile: [" + ", ".join(str(32 + i) for i in range(40)) + "]\n"
        "  verify.seed: [" + ", ".join(str(i) for i in range(30)) + "]\n",
        "sweep",
        "1200 variants, more than the 1000",
    ),
    # ZEN shows class and model names in its interface: no control characters (issue 16 #12)
    (
        "class_name_newline",
        HEAD + 'metadata: {type: SingleClassSemanticSegmentation, classes: [bg, "fg\\n"]}\n',
        "metadata.classes[1]",
        "control character U+000A (line feed) at position 2",
    ),
    (
        "class_name_nul",
        HEAD + 'metadata: {type: SingleClassSemanticSegmentation, classes: ["b\\0g", fg]}\n',
        "metadata.classes[0]",
        "control character U+0000 (NUL) at position 1",
    ),
    (
        "model_name_nul",
        HEAD + "metadata: {type: SingleClassSemanticSegmentation, classes: [bg, fg], "
        'model_name: "Nu\\0clei"}\n',
        "metadata.model_name",
        "ZEN shows this name in its interface",
    ),
    (
        "model_name_tab",
        HEAD + "metadata: {type: SingleClassSemanticSegmentation, classes: [bg, fg], "
        'model_name: "a\\tb"}\n',
        "metadata.model_name",
        "U+0009 (tab)",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_recipe_is_one_line_error(project: Path, text: str, key: str | None, fragment: str):
    name = _write(project, "bad", text)
    with pytest.raises(RecipeError) as info:
        load_variants([name], project_dir=project)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("recipes/bad.yaml"), message
    assert fragment in message, message
    if key is not None:
        assert f": {key}" in message, message


@pytest.mark.parametrize("command", ["show", "status", "build", "list"])
def test_cli_never_prints_a_traceback_for_a_hostile_recipe(project: Path, command: str):
    _write(project, "bad", _alias_bomb())
    args = [command] if command == "list" else [command, "bad"]
    result = CliRunner().invoke(cli, [*args, "--project", str(project)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "aliases '*name' repeat" in result.output, result.output
    if command != "list":
        assert result.exit_code != 0


def test_oversized_recipe_is_refused_before_parsing(project: Path):
    body = "".join(f"unknown_key_{i}: {i}\n" for i in range(limits.MAX_RECIPE_BYTES // 16))
    name = _write(project, "big", HEAD + META + body)
    with pytest.raises(RecipeError, match=r"recipes/big.yaml: the recipe is \d+ bytes, more than"):
        load_variants([name], project_dir=project)


def test_command_line_sweep_is_bounded(project: Path):
    with pytest.raises(RecipeError, match=r"at most 1000 values"):
        load_variants(["ok"], ["tile=range(1,200000)"], project_dir=project)


def test_cli_sweeps_multiply_within_the_bound(project: Path):
    with pytest.raises(RecipeError, match=r"more than the 1000 one recipe may have"):
        load_variants(["ok"], ["tile=range(32,82)", "verify.seed=range(0,30)"], project_dir=project)


def test_a_recipe_file_named_dots_is_not_a_recipe(project: Path):
    (project / "recipes" / "...yaml").write_text(HEAD + META)
    (project / "recipes" / ".#ok.yaml").write_text("editor lock")
    assert list_recipes(project) == ["ok"]
    assert [v.name for v in load_variants(project_dir=project)] == ["ok"]
    with pytest.raises(RecipeError, match=r"'\.\.' is not a usable recipe name"):
        load_variants([str(project / "recipes" / "...yaml")], project_dir=project)


def test_aliases_within_the_budget_still_work(project: Path):
    text = HEAD + "metadata: &m {type: SingleClassSemanticSegmentation, classes: [bg, fg]}\n"
    _write(project, "alias", text)
    (variant,) = load_variants(["alias"], project_dir=project)
    assert variant.name == "alias"


@pytest.mark.parametrize("bad", ["a\nb", "nul\x00", "tab\there", "esc\x1b", "sep\u2028"])
def test_both_formats_refuse_control_characters_in_names(bad: str):
    """The rule lives in formats/ (the recipe only maps its error to the key)."""
    from czbuild.errors import MetadataError
    from czbuild.formats.czann import CzannMetadata
    from czbuild.formats.legacy import LegacyMetadata

    czann = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=(64, 64, 1),
        output_shape=(64, 64, 2),
        min_overlap=(8, 8),
        classes=("bg", bad),
        model_name=bad,
    )
    legacy = LegacyMetadata(
        name=bad,
        color_handling="ConvertToMonochrome",
        pixel_types=("Gray16",),
        classes=(bad, "fg"),
        border_size=8,
    )
    for metadata, index in ((czann, 1), (legacy, 0)):
        problems = {p.field: p for p in metadata.problems()}
        assert "control character U+" in str(problems["ModelName"])
        assert problems["Classes"].index == index and "interface" in str(problems["Classes"])
        with pytest.raises(MetadataError):
            metadata.validate()
