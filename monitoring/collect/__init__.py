"""Collect: read a batch (`sources`), clean its values (`columns`), run the registered model
over it when it has no predictions (`inference`), export a query to a file (`export`)."""
