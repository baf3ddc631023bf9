"""SAEs: training and loading the general SAE (GSAE), evaluation metrics, splicing."""
