"""Base models: building the demo model, fetching and preparing checkpoints, chat formats."""
