#!/usr/bin/env bash
# The peers' benchmark (../shared/peers/run.sh) with this project's variants added: target 1 of issue 19,
# every page its own data (systems oberon-unique, oberon-up-unique, tailor-unique; see systems/unique.sh).
# Run from the project root, with run.sh's own settings, e.g.
#
#   SYSTEMS="tailor-unique oberon-unique oberon-up-unique tailor oberon" ROUNDS=3 bench/peers/run.sh
#
# The peers' folder is not changed: it is copied to PEERS_WORK (default ~/.cache/oberon-peers-plus), these
# files are laid over the copy, and the copy's run.sh runs (results under PEERS_WORK/results/<time>/).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="${PEERS:-$HERE/../../../shared/peers}"
[[ -x "$PEERS/run.sh" ]] || { echo "no peers benchmark at $PEERS (set PEERS=DIR)" >&2; exit 2; }
WORK="${PEERS_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/oberon-peers-plus}"
mkdir -p "$WORK"
cp -rT "$PEERS" "$WORK"
cp "$HERE"/systems/*.sh "$WORK/systems/"
cp "$HERE/tailor/unique.js" "$WORK/tailor/"
rm -rf "$WORK/oberon-unique-site" && cp -r "$HERE/oberon-unique-site" "$WORK/"
chmod -R u+w "$WORK"
exec bash "$WORK/run.sh" "$@"
