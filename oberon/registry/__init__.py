"""The registry service and its clients: teams publish immutable component versions; renderers follow them.

`bundle` packs a component folder into a content-addressed bundle and reads one back safely;
`follower` keeps a renderer's registry in step with the service's snapshot, through a disk copy.
"""
