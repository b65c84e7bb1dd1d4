"""Training: SFT with TRL, checkpoints and resumption, the (multi-node) launcher."""
