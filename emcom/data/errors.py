"""The one exception type of the data stage."""

from emcom.errors import EmcomError


class DataError(EmcomError):
    """Bad input data or settings; the message names the file (and record or member) at fault."""
