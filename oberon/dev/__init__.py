"""Development tools: gallery, debug view, live reload, fault injection, fixtures."""
