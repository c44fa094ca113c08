"""Names shared by the library, the tidy tables, the file layout and the rules."""

# Data splits, in file order (data/<dataset>/<split>.arrow, the tidy `split` column).
SPLITS = ("train", "valid", "test", "test_official")
# The stages that measure a trained checkpoint: the tidy `stage` column, the rules and the file
# names (results/<dataset>/<setting>/seed<seed>/<stage>.parquet).
CHECKPOINT_STAGES = ("eval", "language", "etl")
# Every value of the tidy `stage` column.
STAGES = ("train",) + CHECKPOINT_STAGES
