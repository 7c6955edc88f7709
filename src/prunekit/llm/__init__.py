"""One-shot pruning of Hugging Face transformers: calibration, Wanda/SparseGPT/magnitude, eval."""
