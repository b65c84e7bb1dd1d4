"""Generation: answers to MT-Bench-X from a fine-tuned model (HF or vLLM)."""
