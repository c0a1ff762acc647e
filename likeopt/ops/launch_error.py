"""The one error ``likeopt up`` stops on: every part of the launch raises it, and ``up`` prints it and exits 1."""


class LaunchError(RuntimeError):
    """A process could not start; the message names it and the cause."""
