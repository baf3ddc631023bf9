"""SAEs: training and loading the general SAE (GSAE), the SAEHandle every stage uses
(``handle.py``), evaluation metrics, splicing."""
