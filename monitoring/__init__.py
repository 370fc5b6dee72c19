"""Drift and performance monitoring for PyTorch models, native to MLflow."""
