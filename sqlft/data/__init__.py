"""Data: dataset formats and their loaders, the dataset registry, mixing, validation, the demo sets, and evaluation
examples bound to their databases."""
