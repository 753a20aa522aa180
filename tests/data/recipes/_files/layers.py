"""Placeholder custom-objects file for recipe tests: never imported by the recipe layer."""

CUSTOM_OBJECTS: dict = {}
