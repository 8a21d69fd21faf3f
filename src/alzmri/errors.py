"""The one error type that users see as a single line and exit code 2."""


class AlzmriError(Exception):
    """A problem with the user's input (a path, a file, a config value).

    The CLI prints ``error: <message>`` on one line and exits with code 2, never a
    traceback. The message names the file or value at fault and, where possible, the fix.
    """
