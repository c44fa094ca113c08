"""Snakemake adapter: rule download -> emcom.data.download.fetch (writes <archive>.sha256 too)."""

import logging

from emcom.data import download

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
download.fetch(snakemake.params.url, snakemake.output.archive,  # noqa: F821
               sha256=snakemake.params.sha256)  # noqa: F821
