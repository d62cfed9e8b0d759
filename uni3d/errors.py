"""Errors a user can fix: the CLI prints their one-line message and exits with code 2."""


class UserError(Exception):
    """Bad input or a missing file the user can restore; the message says what to do."""


class AssetError(UserError):
    """A shipped asset (teacher, classifier) is missing or unreadable."""
