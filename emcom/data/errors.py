"""The one exception type of the data stage."""


class DataError(ValueError):
    """Bad input data or settings; the message names the file (and record or member) at fault."""
