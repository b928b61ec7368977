"""The likelihood-vs-MSP study: evaluation, score cache, the reference protocol per OOD set, tables and figures.

Command-line tools: ``python -m analysis.evaluate`` (score models on an OOD suite, write tables),
``python -m analysis.compare`` (the paper's side-by-side table), ``python -m analysis.figures`` (histograms,
ROC curves, AUROC bars, training curves) and ``python -m analysis.svhn_likelihood`` (the CIFAR-10 vs SVHN
bits-per-dim study, the paper's Figure 2).  Every score is oriented higher = more anomalous.
"""
import classifiers_oe  # noqa: E402,F401  (registers the classifier detectors: analysis looks them up by name)
import density_oe  # noqa: E402,F401  (registers the density detectors)
