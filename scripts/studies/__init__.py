"""One-off studies, built on the benchmarks: releases, reproducibility, compression, the ONNX cuts, engines, SBOMs."""
