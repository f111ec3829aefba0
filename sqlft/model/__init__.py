"""The model: loading (local weights, LoRA/QLoRA), precision by hardware, decoding, generation, OpenAI-compatible
remote backends, and the protocol every backend meets."""
