"""The claims scorecard (notebook 08): one measured verdict per paper claim, from saved results."""
