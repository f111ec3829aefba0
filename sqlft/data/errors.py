"""DataError on its own, so that the registry (sqlft.data.registry) and the formats that read through it
(sqlft.data.formats) both raise it without importing each other."""

from sqlft.core.errors import SqlftError


class DataError(SqlftError, ValueError):
    """A dataset that cannot be used at all; the message names the path and what to do."""
