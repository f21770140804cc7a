"""The classifier: assemble it from the committed part, train, export to ONNX, evaluate."""
