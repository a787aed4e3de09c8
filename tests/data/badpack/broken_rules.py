"""A rule pack that fails to import."""

import does_not_exist_anywhere  # noqa: F401

RULES = []
