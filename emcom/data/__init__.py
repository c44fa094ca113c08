"""The data stage: prepared datasets as memory-mapped Arrow files (see docs/data.md).

    load_split(data_dir, split) -> Split     zero-copy (N, D) float32 logits and labels
    read_manifest(data_dir) -> dict          D, split sizes, classes, attribute names, source

Submodules: `synthetic` (embedded dataset), `download` + `extract` (archives), `tfrecord` +
`example` + `tfds_layout` + `tfds` (TFDS shards to Arrow without TensorFlow), `arrow` (the format
and its writer), `splits` (the readers).
"""

from emcom.data.errors import DataError
from emcom.data.splits import Split, load_split, read_manifest

__all__ = ["DataError", "Split", "load_split", "read_manifest"]
