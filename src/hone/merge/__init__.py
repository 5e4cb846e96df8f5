"""Merge a LoRA adapter into its exact base, shard by shard, and prove the result reproduces the adapter."""
