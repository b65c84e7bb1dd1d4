"""Results: tables and plots from what exists under results/."""
