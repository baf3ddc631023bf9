"""Analyses of trained SAEs that later notebooks share (model choice at matched sparsity, ...)."""
