"""Live trading: model loader (SQL over the catalog), feature builder, inference, replay, state journal."""
