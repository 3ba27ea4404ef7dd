"""Errors that mean "the user asked for something invalid" (the CLI exits 2 on these)."""


class UserError(ValueError):
    """Bad user input: a config key, a value, a path. The message names it and the valid choices."""
