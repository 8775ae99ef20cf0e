"""Dynamic int8 quantization of the fp32 graphs (placeholder, filled in later)."""
