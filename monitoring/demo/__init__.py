"""A synthetic credit-default problem and a small PyTorch classifier for `monitoring demo`."""
