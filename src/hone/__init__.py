"""Hone: make a local open-weights chat model better, round after round, with honest numbers."""

import logging

__version__ = "0.1.0"

# bitsandbytes (QLoRA) warns at import, on CPUs with AVX-512 BF16, that an optional kernel from the Hugging Face
# hub is missing; transformers imports it everywhere, and Hone never fetches code from the hub.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
