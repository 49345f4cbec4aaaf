"""Errors that mean "the request is wrong", as opposed to "the server failed"."""


class InvalidInputError(ValueError):
    """The client sent something the model cannot take; Triton answers 400 / INVALID_ARGUMENT."""
