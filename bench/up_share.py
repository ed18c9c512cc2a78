"""Where `oberon up`'s CPU goes on a page: the embedded gateway's own work against the renderer's (issue 19).

Reads a py-spy profile of an `oberon up` process under load (`py-spy record --format raw`: one collapsed stack
and its count a line) and sorts each sample by where it was taken:

- the gateway's own work: under the gateway's observability layer (`Instrumented`) and not yet inside the
  renderer it calls directly (`gateway.direct.DirectAnswer`);
- the renderer's answer passing back out through the gateway's layers (below `DirectAnswer`'s `hop_send`),
  of which uvicorn's own send (which the renderer alone pays too);
- the renderer's app, called by the gateway;
- everything outside a request's own task (the page's loads and renders run in tasks of their own, the server).

The gateway's own leaf functions are listed, the costliest first.

    python -m bench.up_share PROFILE.raw [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_INSTRUMENTED = re.compile(r"Instrumented\.__call__ \(")
_DIRECT = "DirectAnswer.__call__ ("
_HOP_SEND = "hop_send ("
_PREFIXES = re.compile(r"\S*site-packages/|/\S*?/(?=(gateway|oberon|bench)/)")


def where(frames: list[str]) -> str:
    """The part of `oberon up` a sample (its stack, outermost first) was taken in."""
    observed = [index for index, frame in enumerate(frames) if _INSTRUMENTED.search(frame)]
    if not observed:
        return "outside a request's task (the page's loads and renders, the server)"
    direct = next((index for index, frame in enumerate(frames) if _DIRECT in frame), None)
    if direct is None:
        return "the gateway's own work"
    hop_send = next((index for index, frame in enumerate(frames) if _HOP_SEND in frame), None)
    if hop_send is not None:
        if any("uvicorn" in frame for frame in frames[hop_send:]):
            return "the answer out through the gateway's layers: uvicorn's send"
        return "the answer out through the gateway's layers"
    return "the renderer's app"


def shares(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Samples in all, by part, and the gateway's own work by leaf function."""
    parts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        part = where(frames)
        parts[part] += int(count)
        if part == "the gateway's own work":
            leaves[_PREFIXES.sub("", frames[-1])] += int(count)
    return total, parts, leaves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, parts, leaves = shares(args.profile)
    print(f"{total} samples")
    for part, count in parts.most_common():
        print(f"{count / total * 100:5.1f} %  {part}")
    print("the gateway's own work, by leaf function:")
    for leaf, count in leaves.most_common(args.top):
        print(f"{count / total * 100:5.1f} %  {leaf}")


if __name__ == "__main__":
    main()
