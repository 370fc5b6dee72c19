"""Core: what every stage speaks. Configuration, schema, alert-rule definitions, the
accumulator protocol and the engine that runs accumulators over chunks (threads, read-ahead,
BLAS limits). Imports only `monitoring.errors` and `monitoring.stats`."""
