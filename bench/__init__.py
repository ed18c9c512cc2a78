"""The load benchmarks of issue 8 and the tools around them; `bench/run.py` and `bench/ab.py` are the commands.

- `checkout`: the code under test: the repository's paths, the bench site's build, the commit measured.
- `servers`: the stand-in BFF and the renderer as pinned processes, started and stopped by PID.
- `procfs`: what /proc says of those processes: CPU time, memory, the process tree.
- `load`: wrk runs (bench/percentiles.lua's JSON line) and one measured case, a `Result`.
- `ttfb`: time to first and last byte of a streamed page, over a raw socket (slow-component).
- `profiling`: a page-5 run under py-spy and the summary of its stacks.
- `scenarios`: the scenarios `bench/run.py` names, each a list of `Result`s, and their targets.
- `compare`: `--compare`: this run's cases against an earlier results file.
- `report`: the results file's machine, command and Markdown.
- `bulkhead`: issue 16's `bulkhead` benchmark (its own command): failures stay at their grain under load.
- `overload`: issue 16's `overload` benchmark (its own command): beyond capacity, shed fast instead of queueing.
- `shed_cost`: the server's CPU per shed request (its own command), the figure behind `overload`'s goodput.
- `lighthouse`: Lighthouse on the demo's pages (its own command, `make lighthouse`), the code `make test` runs too.
- `waiting_room`: issue 16's `waiting-room` benchmark (its own command): an on-sale rush admitted in arrival order.
"""
