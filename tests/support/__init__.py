"""Shared test doubles and project builders (not test modules)."""
