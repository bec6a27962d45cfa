"""Errors that the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """A mistake in the user's input (bad path, malformed file, unknown name): reported, not raised."""


class GeexWarning(UserWarning):
    """Something the user should know that does not stop the command (random weights, a missing
    optional package, a slow setting). The one channel for such messages: library code calls
    ``warnings.warn(message, GeexWarning)``, never ``print``, so a program using geex as a library
    can filter or record them; the CLI prints each one, every time, as a ``WARNING:`` line."""
