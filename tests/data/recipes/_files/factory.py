"""Placeholder factory for recipe tests: the recipe layer never imports it."""


def build():  # pragma: no cover - never called by the recipe tests
    raise RuntimeError("recipe tests must not build models")
