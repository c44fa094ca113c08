"""The base of the project's error types, so a stage can catch "bad input" in one clause.

`emcom.config.ConfigError`, `emcom.checkpoint.CheckpointError` and `emcom.data.DataError` derive
from it; each message names the file (and record, key or member) at fault.
"""


class EmcomError(ValueError):
    """Bad input: a damaged or mismatched file, or an invalid setting."""
