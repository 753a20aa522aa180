"""Recipes to variants: :class:`Variant` and :func:`load_variants`, the recipe layer's API.

For each recipe: read the file (:mod:`~czbuild.recipe.source`), check its defaults list and
the overrides, compose it with Hydra once per distinct set of config-group selections
(:mod:`~czbuild.recipe.compose`), expand the sweep (:mod:`~czbuild.recipe.sweep`), validate
each point (:mod:`~czbuild.recipe.schema`), resolve it (:mod:`~czbuild.recipe.resolve`) and
digest it (:mod:`~czbuild.recipe.digest`). Points that resolve to the same spec are one
variant. A one-value command-line override of a key the recipe does not sweep is part of the
variant's name (``cellk tile=256`` is ``cellk@tile=256``, in its own folder) unless it does
not change the resolved spec (``tile=128`` when the recipe says ``tile: 128`` is ``cellk``).
Every user error is a one-line :class:`RecipeError` naming the recipe file, the
dotted key, the line when the recipe file shows it, and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from czbuild.errors import RecipeError
from czbuild.recipe.compose import Composer, ParsedOverride, parse_overrides
from czbuild.recipe.diagnostics import Issue, issue_from_validation
from czbuild.recipe.digest import pin_matches, spec_digest
from czbuild.recipe.keys import choices_hint, format_key, parse_key
from czbuild.recipe.project import config_search_path, group_options, list_recipes, locate_recipe
from czbuild.recipe.resolve import ResolveContext, resolve_recipe
from czbuild.recipe.schema import Recipe
from czbuild.recipe.source import RecipeSource, read_source
from czbuild.recipe.spec import RecipeSpec
from czbuild.recipe.sweep import (
    SweepPoint,
    check_recipe_key,
    check_sweep_key,
    plan_points,
    variant_dir,
    variant_name,
)
from czbuild.recipe.targets import check_target
from czbuild.recipe.variant import Variant
from czbuild.sources.kinds import is_import_name

__all__ = ["Variant", "check_source_pin", "load_variants"]


def _inputs(spec: RecipeSpec, project_dir: Path) -> tuple[Path, ...]:
    paths = [
        spec.model.path,
        *(p for p in spec.model.custom_objects if not is_import_name(p)),
        *(spec.model.inputs or ()),
    ]
    if spec.metadata.license:
        paths.append(spec.metadata.license)
    paths.extend(spec.verify.samples)
    if spec.verify.expect:
        paths.append(spec.verify.expect)
    out: list[Path] = []
    for rel in paths:
        full = project_dir / PurePosixPath(rel)
        if full not in out:
            out.append(full)
    return tuple(out)


def _overlaps(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether one key path is a prefix of the other."""
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]


class _RecipeLoader:
    """Loads the variants of one recipe file (one instance per recipe and call)."""

    def __init__(
        self, file: Path, project_dir: Path, cli: Sequence[ParsedOverride], cli_texts: Sequence[str]
    ) -> None:
        self.project_dir = project_dir
        self.source: RecipeSource = read_source(file, project_dir=project_dir)
        self.search = config_search_path(project_dir)
        self.groups = group_options([file.parent, *self.search])
        self.cli = cli
        self.cli_texts = cli_texts
        self.composer = Composer(file, self.search)

    # --- errors ---------------------------------------------------------------------------

    def _error(
        self, issue: Issue, point: SweepPoint | None = None, variant: str | None = None
    ) -> RecipeError:
        """Turn an Issue into a RecipeError with the best line and where the value came from."""
        note = ""
        line = None
        for key, origin in point.origins if point else ():
            if _overlaps(parse_key(key), issue.key):
                if origin[0] == "sweep":
                    line = self.source.line_of(("sweep", origin[1], origin[2]))
                else:
                    note = f" (from the command line: {origin[1]})"
                break
        else:
            cli_hit = [
                t
                for t in self.cli_texts
                if issue.key
                and _overlaps(
                    parse_key(t.split("=", 1)[0].lstrip("+~").split("@", 1)[0]), issue.key
                )
            ]
            if cli_hit:
                note = f" (from the command line: {cli_hit[0]})"
        if variant and point and point.items:
            note += f" (variant {variant})"
        err = self.source.error(
            issue.message + note, issue.key or None, nearest=issue.nearest, line=line
        )
        return err

    # --- checks before composing ----------------------------------------------------------

    def _check_option(self, group: str, option: str, key: Any, line: int | None = None) -> None:
        options = self.groups.get(group)
        if options is None:
            raise self.source.error(
                f"no config group {group!r}; {choices_hint(group, self.groups, noun='groups')}",
                key,
                line=line,
            )
        if option not in options:
            raise self.source.error(
                f"no config {group}/{option}.yaml in {self._where()}; "
                f"{choices_hint(option, options, noun=f'{group} options')}",
                key,
                line=line,
            )

    def _where(self) -> str:
        return ", ".join(str(p) for p in [self.source.path.parent, *self.search])

    def check_defaults(self) -> None:
        for entry in self.source.defaults:
            key = ("defaults", entry.index)
            if entry.group is None:
                name = entry.options[0]
                if not (self.source.path.parent / f"{name}.yaml").is_file() and not any(
                    (p / f"{name}.yaml").is_file() for p in self.search
                ):
                    raise self.source.error(
                        f"no config {name}.yaml on the search path ({self._where()})", key
                    )
                continue
            if entry.optional and entry.group not in self.groups:
                continue
            for option in entry.options:
                if entry.optional and option not in self.groups.get(entry.group, []):
                    continue
                self._check_option(entry.group, option, key)

    def check_cli(self) -> None:
        """Group options must exist; value overrides must name schema keys."""
        for override in self.cli:
            if override.key in self.groups and override.prefix != "~":
                for _, value in override.points:
                    if isinstance(value, str):
                        self._check_option(override.key, value, override.key)
            elif override.prefix != "~":
                try:
                    check_recipe_key(override.key)
                except Issue as issue:
                    raise self.source.error(
                        f"{issue.message} (command line: {override.text})", issue.key
                    ) from None

    # --- composition ----------------------------------------------------------------------

    def _sweep_section(self) -> dict[str, list[Any]]:
        fixed = plan_points(
            {},
            [o for o in self.cli if not o.is_sweep],
            groups=self.groups,
            groups_in_defaults=self.source.groups_in_defaults(),
        )[0]
        base = self.composer.compose(fixed.group_overrides, fixed.value_overrides)
        sweep = base.get("sweep") or {}
        if not isinstance(sweep, Mapping):
            raise self.source.error(
                "must be a mapping of dotted keys to lists of values, e.g. {tile: [256, 512]}",
                ("sweep",),
            )
        out: dict[str, list[Any]] = {}
        for key, values in sweep.items():
            check_sweep_key(str(key))
            if not isinstance(values, list) or not values:
                raise Issue(
                    ("sweep", str(key)), "must be a non-empty list of values, e.g. [256, 512]"
                )
            root = parse_key(str(key))[0]
            for i, value in enumerate(values):
                if root in self.groups and isinstance(value, str) and len(parse_key(key)) == 1:
                    options = self.groups[root]
                    if value not in options:
                        raise Issue(
                            ("sweep", str(key), i),
                            f"no config {root}/{value}.yaml; "
                            f"{choices_hint(value, options, noun=f'{root} options')}",
                        )
            out[str(key)] = values
        return out

    def load(self) -> list[Variant]:
        self.check_defaults()
        self.check_cli()
        try:
            sweep = self._sweep_section()
        except Issue as issue:
            raise self._error(issue) from None
        try:
            points = plan_points(
                sweep,
                self.cli,
                groups=self.groups,
                groups_in_defaults=self.source.groups_in_defaults(),
            )
        except Issue as issue:
            raise self._error(issue) from None
        variants: list[Variant] = []
        seen: dict[str, str] = {}
        for point in points:
            variant = self._unpinned(point, self._variant(point))
            if variant.digest in seen:
                continue
            seen[variant.digest] = variant.name
            variants.append(variant)
        return variants

    def _same_spec(self, point: SweepPoint, digest: str) -> Variant | None:
        """The variant of ``point`` if it composes and resolves to ``digest``, else None."""
        try:
            variant = self._variant(point)
        except RecipeError:
            return None
        return variant if variant.digest == digest else None

    def _unpinned(self, point: SweepPoint, variant: Variant) -> Variant:
        """``variant`` named without the command-line pins that do not change its spec.

        All pins go if the point resolves to the same spec without any of them (so
        ``tile=128`` on a recipe that says ``tile: 128`` is the recipe's own variant);
        otherwise each pin, in name order, goes if the spec stays the same without it.
        """
        if not point.pins:
            return variant
        plain = self._same_spec(point.without(*point.pins), variant.digest)
        if plain is not None:
            return plain
        current, best = point, variant
        for pin in sorted(point.pins, key=lambda p: (p.key, p.text)):
            reduced_point = current.without(pin)
            reduced = self._same_spec(reduced_point, variant.digest)
            if reduced is not None:
                current, best = reduced_point, reduced
        return best

    def _variant(self, point: SweepPoint) -> Variant:
        stem = self.source.stem
        name = variant_name(stem, point.items)
        try:
            data = self.composer.compose(
                point.group_overrides, point.value_overrides, point.assignments
            )
            data.pop("sweep", None)
            try:
                recipe = Recipe.model_validate(data)
            except ValidationError as exc:
                raise issue_from_validation(exc, Recipe) from None
            notes = check_target(recipe.target)
            ctx = ResolveContext(
                recipe_file=self.source.path,
                project_dir=self.project_dir,
                format_swept=any(k == "format" for k, _ in point.origins),
            )
            spec = resolve_recipe(recipe, stem, ctx)
        except Issue as issue:
            raise self._error(issue, point, name) from None
        out_dir = variant_dir(point.items)
        return Variant(
            recipe=stem,
            name=name,
            recipe_file=self.source.path,
            project_dir=self.project_dir,
            spec=spec,
            digest=spec_digest(spec),
            inputs=_inputs(spec, self.project_dir),
            output=PurePosixPath(stem, out_dir, f"{stem}.{spec.extension}"),
            sweep=point.items,
            sweep_values=point.values,
            notes=notes,
        )


def load_variants(
    names: Iterable[str | Path] | None = None,
    overrides: Sequence[str] = (),
    *,
    project_dir: Path | str,
) -> list[Variant]:
    """Load, compose, validate and expand recipes into variants.

    Args:
        names: Recipe names (``nuclei``) or paths to recipe files; None for every recipe in
            ``project_dir/recipes/*.yaml``, sorted by name.
        overrides: Command-line overrides in Hydra syntax, applied to every named recipe;
            sweeps (``tile=256,512``, ``range(...)``) add variants.
        project_dir: The project folder (holds ``recipes/`` and optionally ``configs/``).

    Returns:
        The variants, recipe by recipe in the order given, each recipe's variants in sweep
        order; points resolving to the same spec appear once. A variant's name (and output
        folder) holds its swept keys and every override that changes its spec
        (``nuclei@target=zen-core-3.4,tile=256``); an override that changes nothing is left
        out, so ``tile=128`` on a recipe with ``tile: 128`` gives the plain ``nuclei``.

    Raises:
        RecipeError: Any problem with a recipe or an override, naming the file and key.
    """
    project = Path(project_dir).absolute()
    files = (
        [locate_recipe(n, project) for n in names]
        if names is not None
        else [project / "recipes" / f"{n}.yaml" for n in list_recipes(project)]
    )
    try:
        cli = parse_overrides(list(overrides))
    except Issue as issue:
        where = files[0] if len(files) == 1 else None
        display = None
        if where is not None:
            try:
                display = where.relative_to(project).as_posix()
            except ValueError:
                display = str(where)
        raise RecipeError(
            f"{issue.message} (command line)", file=display, key=format_key(issue.key) or None
        ) from None
    variants: list[Variant] = []
    outputs: dict[PurePosixPath, Variant] = {}
    for file in dict.fromkeys(files):
        loader = _RecipeLoader(file, project, cli, list(overrides))
        for variant in loader.load():
            other = outputs.get(variant.output)
            if other is not None:
                raise RecipeError(
                    f"variant {variant.name} writes the same output {variant.output} "
                    f"as {other.recipe_file}; rename one of the recipes",
                    file=loader.source.display,
                )
            outputs[variant.output] = variant
            variants.append(variant)
    return variants


def check_source_pin(variant: Variant) -> None:
    """Check the model source against ``model.sha256`` when the recipe pins it.

    Raises:
        RecipeError: The digest differs (names the recipe file, ``model.sha256`` and its line).
    """
    pinned = variant.spec.model.sha256
    if pinned is None:
        return
    matches, actual = pin_matches(variant.path(variant.spec.model.path), pinned)
    if not matches:
        source = read_source(variant.recipe_file, project_dir=variant.project_dir)
        raise source.error(
            f"the model source {variant.spec.model.path} has sha256 {actual}, "
            f"not the pinned {pinned}; update the pin if the change is intended",
            ("model", "sha256"),
        )
