"""Typed errors of policies/: what a command can tell the user in one line (the CLI maps them to exit code 2)."""


class PolicyError(Exception):
    """A policy, checkpoint, bundle or dataset cannot be used as given; the message says what to do."""


class PolicyLoadError(PolicyError, ValueError):
    """A checkpoint or bundle folder is missing a file, or a file is truncated, damaged or not what its manifest
    records; the message names the file."""
