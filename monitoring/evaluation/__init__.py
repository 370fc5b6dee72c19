"""Evaluation: the two passes over data, fitting a reference and evaluating a batch, each
a set of accumulators run by the engine, and the frozen `BatchReport` they produce."""
