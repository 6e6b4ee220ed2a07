"""The heterogeneous scheduling engine: one Executor protocol, a driver per cluster kind, no Django."""
