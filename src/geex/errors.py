"""Errors that the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """A mistake in the user's input (bad path, malformed file, unknown name): reported, not raised."""
