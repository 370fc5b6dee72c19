"""Explain: where the error sits (worst samples, segments) and what people wrote about it
(notes)."""
