"""Shared pytest setup. Fixtures live in tests/fixtures/*.py, one module per concern, registered here."""

pytest_plugins = [
    "tests.fixtures.images",
    "tests.fixtures.shared",
    "tests.fixtures.runs",
    "tests.fixtures.models",
]
