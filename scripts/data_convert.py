"""Snakemake adapter: rule convert_<name> -> emcom.data.tfds.convert."""

import logging
from pathlib import Path

from emcom.data import tfds

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sha256 = Path(snakemake.input.checksum).read_text().split()[0]  # noqa: F821
tfds.convert(snakemake.input.archive, Path(snakemake.output.manifest).parent,  # noqa: F821
             splits=snakemake.params.splits, sha256=sha256,  # noqa: F821
             config={"splits": snakemake.params.splits, "sha256": sha256})  # noqa: F821
