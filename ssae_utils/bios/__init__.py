"""Bias in Bios case study (notebook 07): removing a spurious gender signal with SAE features.

One job per module:

* ``config``      ``BiosStudyConfig`` and its smoke / embedded / paper presets
* ``data``        ambiguous and balanced document sets, counterfactual (pronoun-swap) pairs
* ``pooling``     mean-pooled residuals and SAE features per document
* ``probe``       the linear probe (logistic regression), folded to one raw-space direction
* ``metrics``     profession / gender / worst-group accuracy, bootstrap confidence intervals
* ``attribution`` each feature's effect on the probe's logit (activation x gradient, exact)
* ``selection``   the automatic gender criterion that picks features to ablate
* ``shift``       zero ablation keeping the SAE error term, "+ retrain", the random baseline
* ``scr``         SAEBench's spurious-correlation-removal score
* ``compress``    slicing an SAE to a fraction of its features
* ``audit``       top activating tokens of the selected features
* ``ssae``        the biographies SSAE's training data (seed bios + dense retrieval)

The stage itself is ``ssae_utils.pipeline.bias_in_bios``.
"""

from ssae_utils.bios.config import BiosStudyConfig

__all__ = ["BiosStudyConfig"]
