"""Instructions a page of `bench.pipeline_cpu`'s workload, which other work on the machine does not move:
`python -m bench.pipeline_instructions --checkout DIR [--checkout DIR]...` (needs valgrind).

Each checkout's child (target 1's unique page, 48 pages in flight, a 144-page warm-up) runs under
`valgrind --tool=cachegrind --cache-sim=no` for 960 pages and for 96; the difference over 864 pages leaves
start-up out. Streaming is off, so no timer decides a page's path. About a minute and a half a checkout.
`--given`: every answer the same bytes (as page-5 as given), so decoded answers and renders are shared between
pages.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.pipeline_cpu import CHILD, SITE

SHORT, LONG = 96, 960


def instructions(checkout: Path, child: Path, out: Path, *args: str) -> int:
    """Instructions `child` (a script, given `args`) runs under cachegrind with `checkout` on its path."""
    subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}",
         sys.executable, str(child), *args],
        cwd=checkout, env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}, check=True, capture_output=True,
    )  # fmt: skip
    found = re.search(r"^summary: (\d+)", out.read_text(), re.M)
    assert found is not None, f"no summary in {out}"
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkout", type=Path, action="append", required=True, help="code to measure (repeatable)")
    parser.add_argument("--given", action="store_true", help="the same bytes in every answer")
    args = parser.parse_args()
    warm = CHILD.replace("client(50) for _ in range(IN_FLIGHT)", "client(3) for _ in range(IN_FLIGHT)")
    # No streaming: under valgrind's ~50× slowdown the 10 ms a page's children are given passes while they render,
    # so how many pages streamed (a costlier path) moved with the machine's load, and the count with it (±50 %).
    warm = warm.replace("stream_after=0.010", "stream_after=None")
    if args.given:
        warm = warm.replace('"n": Instant.answered', '"n": 0')
    with tempfile.TemporaryDirectory() as folder:
        child = Path(folder) / "child.py"
        child.write_text(warm)
        for checkout in args.checkout:
            short = instructions(checkout.resolve(), child, Path(folder) / "short.out", str(SITE), str(SHORT), "48")
            long = instructions(checkout.resolve(), child, Path(folder) / "long.out", str(SITE), str(LONG), "48")
            print(f"{checkout}: {(long - short) / (LONG - SHORT) / 1e6:.2f} M instructions a page", flush=True)


if __name__ == "__main__":
    main()
