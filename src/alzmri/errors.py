"""The one error type that users see as a single line and exit code 2."""


class AlzmriError(Exception):
    """A problem with the user's input (a path, a file, a config value).

    The CLI prints ``error: <message>`` on one line and exits with code 2, never a
    traceback. The message names the file or value at fault and, where possible, the fix.
    """


class RunInterrupted(AlzmriError):
    """Training stopped by a signal (Ctrl-C / SIGINT, SIGTERM) with the run folder resumable.

    The CLI prints ``error: <what>; continue with: <command>`` on one line and exits with
    ``exit_code``: 128 + the signal number (130 for SIGINT, 143 for SIGTERM), the shell's
    convention for a process ended by a signal.

    Parameters
    ----------
    what : str
        What was interrupted and which checkpoint is kept.
    command : str
        The command that continues the run (``alzmri train --out RUN --resume``).
    exit_code : int, default=130
    """

    def __init__(self, what: str, command: str, exit_code: int = 130):
        super().__init__(f"{what}; continue with: {command}")
        self.what = what
        self.command = command
        self.exit_code = exit_code
