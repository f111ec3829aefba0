"""The one base class of the errors a user sees.

Each command's main() catches SqlftError and exits with its message (no traceback); anything else is a bug and keeps
its traceback. A subclass keeps a builtin second base where callers catch that (ValueError, RuntimeError,
FileNotFoundError), so `except ValueError` around library calls still works.
"""


class SqlftError(Exception):
    """An error the user can fix; its message says what was wrong and what to do."""
