"""Provider protocol and adapters: the only place that knows vendors."""
