"""Errors that tell a user which input is wrong and what is allowed."""


class FlexgameInputError(ValueError):
    """Bad user input (case file, configuration value, bid data).

    The message always names the offending file, key or value and, where the set of
    valid values is finite, lists what is allowed.
    """


def require_choice(key: str, value, allowed) -> None:
    """Stop with a clear message when ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise FlexgameInputError(
            f"{key}={value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}"
        )


class SolverError(RuntimeError):
    """A solver did not return an optimal solution, or refused a change of its model: the
    clearing has no trustworthy result, so it never yields a number."""
