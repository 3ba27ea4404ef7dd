"""Errors that mean "the user asked for something invalid" (the CLI exits 2 on these)."""


class UserError(ValueError):
    """Bad user input: a config key, a value, a path. The message names it and the valid choices."""


class RunError(RuntimeError):
    """A run failed in a way the user must act on (e.g. it diverged); the CLI prints the message
    in one line and exits with code 1."""
