"""Turning exceptions into the one-line messages operators read."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (drivers add hints and context below it),
    or the exception's class name when it has no message."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
