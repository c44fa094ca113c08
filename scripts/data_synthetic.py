"""Snakemake adapter: rule synthetic_<name> -> emcom.data.synthetic.write."""

import logging
from pathlib import Path

from emcom.data import synthetic

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
synthetic.write(Path(snakemake.output.manifest).parent, name=snakemake.params.name,  # noqa: F821
                **snakemake.params.knobs)  # noqa: F821
