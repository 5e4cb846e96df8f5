"""Training data from verified improvements: builders (SFT rows, DPO pairs, bootstrap, the control arm's rows),
the guards every row passes (dedup, decontamination against held-out suites, replay), and the `data` stage."""
