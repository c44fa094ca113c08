"""emcom: Emergent Communication at Scale (Chaabouni et al., ICLR 2022) in JAX, as a library.

The Snakemake workflow at the repository root only adapts these modules to files; everything that
computes lives here.
"""

__version__ = "0.1.0"
