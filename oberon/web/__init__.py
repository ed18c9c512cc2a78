"""The renderer's Starlette app and the asset server: HTTP at the edge of the pipeline."""
