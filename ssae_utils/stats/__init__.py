"""Statistics for the scorecard: paired hierarchical uncertainty (``hierarchical``), multiple
testing (``multiplicity``), power and minimum detectable effects (``power``), and the
four-outcome verdict rule (``verdict``)."""
