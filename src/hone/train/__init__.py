"""Supervised fine-tuning (LoRA or full) through TRL, with a lineage file that records what the weights saw."""
