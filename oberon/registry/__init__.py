"""The registry service and its clients: teams publish immutable component versions; renderers follow them.

`bundle` packs a component folder into a content-addressed bundle and reads one back safely; `guard`
watches a canary against stable on the renderers' metrics and rolls it back when it is worse.
"""
