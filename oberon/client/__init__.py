"""The resilient client: every downstream call of the renderer and the BFFs goes through it."""
