"""The composition root: settings from the environment, service wiring, supervisor, CLI, deployment."""
