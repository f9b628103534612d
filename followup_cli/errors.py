"""The project's exceptions. Each carries the exit code the CLI edge turns it into.

Driver and library errors are translated into these at the boundary where they occur
(settings, database, senders), so no caller ever needs to know about psycopg2 or sqlite3.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # runtime failure, or `health` not healthy
    INVALID = 2  # invalid input or settings: nothing was written
    REFUSED = 3  # refused by a rule (the per-user cap, cancelling an executed one)
    DATABASE = 4  # database unreachable, schema not migrated or newer, operation refused


class FollowupError(Exception):
    """Root of every error followup reports; the message says what to do about it."""

    exit_code = ExitCode.FAILURE


class InputError(FollowupError):
    """A value given on the command line, in a file or in the environment is not valid.

    Fix the value named in the message and run the command again; nothing was written.
    """

    exit_code = ExitCode.INVALID


class SettingsError(InputError):
    """An environment variable (or its command-line option) holds a value that cannot be used."""


class NotFoundError(InputError):
    """An id that names no follow-up."""


class RuleViolation(FollowupError):
    """The request is valid but a rule refuses it (per-user cap, state that cannot change)."""

    exit_code = ExitCode.REFUSED


class DatabaseError(FollowupError):
    """The database cannot be reached or failed; check DATABASE_URL and the server."""

    exit_code = ExitCode.DATABASE


class SchemaError(DatabaseError):
    """The database schema is missing or older than this version (run `followup db upgrade`),
    or newer than this version can work with (upgrade followup on this host)."""


class LockedError(DatabaseError):
    """A row (or the SQLite database) is locked by another session and the wait for it gave
    up after the lock timeout; nothing was written. Try again in a moment."""


class DecryptError(FollowupError):
    """A stored message is encrypted and no key of FOLLOWUP_ENCRYPTION_KEY opens it (or no
    key is set). Add the key it was sealed with (its id is in the message) to the list.

    `no_key` is True when FOLLOWUP_ENCRYPTION_KEY is not set at all: a settings problem
    (exit 2); a key that does not open the value is a runtime failure (exit 1)."""

    def __init__(self, message: str, *, no_key: bool = False):
        super().__init__(message)
        self.no_key = no_key
        self.exit_code = ExitCode.INVALID if no_key else ExitCode.FAILURE


class DeliveryError(Exception):
    """A sender could not deliver one follow-up.

    `transient` failures are retried with backoff; others fail the follow-up at once.
    `retry_after` is the receiver's own Retry-After, in seconds, when it sent one.
    """

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
