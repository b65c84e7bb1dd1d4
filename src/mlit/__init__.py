"""mlit: multilingual instruction tuning workflow (Weber et al., EMNLP 2024, reproduced and extended)."""

__version__ = "0.1.0"
