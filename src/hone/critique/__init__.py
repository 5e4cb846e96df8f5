"""Self-critique (critique + rewrite, re-judged live) and training data built only from verified improvements."""
