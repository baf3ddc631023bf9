"""ssae_utils: the tested library behind the SSAE reproducible report.

Notebooks in ``notebooks/`` stay thin and call into this package; every stage saves its
results under ``results/<profile>/`` and every figure is drawn from those files.
"""

__version__ = "0.1.0"
