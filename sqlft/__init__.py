"""sqlft: fine-tune, evaluate and serve Llama-family models for text-to-SQL."""

__version__ = "0.1.0"
