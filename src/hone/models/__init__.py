"""Model loading, inspection (dtype, quantization, content hash) and the tiny local model factory."""
