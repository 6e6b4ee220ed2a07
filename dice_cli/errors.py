"""The one exception type the CLI turns into a one-line message and an exit code."""


class CliError(Exception):
    """A failure to report as `dice: error: <message>` with the given exit code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
