"""The one exception type users see, printed as a paragraph without a traceback."""


class CaffeboxError(Exception):
    """A failure the user can fix: the message names the file and the fix."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code
