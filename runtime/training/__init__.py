"""Training: the Trainer every network shares, optimisers, data, checkpoints, plots, command-line plumbing."""
