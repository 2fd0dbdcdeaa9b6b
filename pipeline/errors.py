"""Errors a user can fix. The CLI prints them as one line and exits with code 2, never a traceback."""

EXIT_RUN_FAILED = 1
EXIT_USER_ERROR = 2  # also a run that stopped itself with a reason the user can act on (interrupts.stop)


class UserError(Exception):
    """A mistake in the user's config, command line or input that they can fix."""


class RunFailed(Exception):
    """The run cannot produce what it was asked for (an LLM endpoint whose requests keep failing,
    input of which nothing was readable). Not the user's typo and not a bug: one line, exit code 1."""


class InvariantViolation(RuntimeError):
    """A stage lost or invented rows (rows in != kept + dropped): a bug, so the run fails loudly."""
