"""Snakemake adapter: rule convert_<name> -> emcom.data.tfds.convert."""

import logging
from pathlib import Path

from emcom.data import download, tfds

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sha256 = download.read_checksum(snakemake.input.checksum)  # noqa: F821
tfds.convert(snakemake.input.archive, Path(snakemake.output.manifest).parent,  # noqa: F821
             splits=snakemake.params.splits, sha256=sha256,  # noqa: F821
             config={"splits": snakemake.params.splits, "sha256": sha256},  # noqa: F821
             **snakemake.params.limits)  # noqa: F821
