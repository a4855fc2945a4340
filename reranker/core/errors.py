"""The error raised for bad input: data files, configuration values, model paths."""


class InputError(ValueError):
    """Bad input, with a message that names where it is (file, line, field) and what would be right.

    The command-line entry points print the message on one line and exit with a non-zero status.
    """
