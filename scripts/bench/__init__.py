"""The benchmarks: make compare and what it draws on, the peers, load and scale-out."""
