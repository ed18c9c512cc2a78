"""The page pipeline: registry, routing, state, loading, rendering, cache policy; free of HTTP objects."""
