"""Generation backends behind one protocol (one file each) and the resumable `generate` stage."""
