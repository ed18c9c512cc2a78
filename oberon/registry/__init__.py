"""The registry service and its clients: teams publish immutable component versions; renderers follow them.

`bundle` packs a component folder into a content-addressed bundle and reads one back safely;
`snapshot` is what renderers follow (each component's stable version and canary, at a revision);
`store` keeps versions, channels, history and team tokens in SQLite or PostgreSQL; `tokens` says
who may change what; `checks` runs the publish checks; `service` is the HTTP API
(`/registry/v1/…`) and `client` speaks it.
`follower` keeps a renderer's registry in step with the service's snapshot, through a disk copy;
`guard` watches a canary against stable on the renderers' metrics and rolls it back when it is worse.
"""
