"""Measure: the fitted reference's types, per-column and batch-level accumulators, drift
decisions, multivariate and embedding drift, anomaly scores and performance metrics."""
