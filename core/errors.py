"""Errors that reach the user as one line (CLI and pages)."""


class UserError(Exception):
    """A problem the user can act on: bad input, unreachable endpoint, missing model.

    Its message is shown as is, on one line, without a traceback.
    """

    def one_line(self) -> str:
        return " ".join(str(self).split())
