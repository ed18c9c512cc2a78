"""The registry service and its clients: teams publish immutable component versions; renderers follow them.

`bundle` packs a component folder into a content-addressed bundle and reads one back safely.
`checks` says why a release would be refused: `oberon check` over the new set, and each candidate's contract.
"""
