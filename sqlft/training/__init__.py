"""Training recipes: SFT and GRPO over shared parts (tokenized datasets, shared-schema packing, the fused LM head,
the execution reward), and merging an adapter into a 16-bit model."""
