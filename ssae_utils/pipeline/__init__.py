"""One module per notebook: the logic behind each stage, so notebooks stay thin."""
