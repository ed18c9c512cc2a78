# Issue 19, target 1: page-5 with every page its own data. wrk asks for /page-5/<random> (run.sh's
# PAGE5_UNIQUE_PATH), and the page's id reaches each fragment's URL, so no two pages in flight share a
# fetch; and the fragment server ends every JSON answer with a counter (FRAGMENT_CHANGING=1), so no two
# answers are the same bytes: nothing one page fetched, decoded or rendered can serve another. Copied into the peers' systems/ by bench/peers/run.sh;
# uses oberon.sh's oberon_install, OBERON_VENV and start_fragment_server from run.sh.
UNIQUE_SITE="$PEERS/oberon-unique-site/oberon.toml"

unique_oberon_install() {
    oberon_install
    "$OBERON_VENV/bin/python" -m oberon --site "$UNIQUE_SITE" build >/dev/null
}
unique_oberon_start() { # $1 = delay ms, $2 = service command...
    local delay=$1; shift
    FRAGMENT_CHANGING=1 start_fragment_server "$delay"
    start_proc oberon "$SUT_CPU" env -u OBERON_DEGRADED -u OBERON_FAULTS \
        "$OBERON_VENV/bin/python" -m oberon --site "$UNIQUE_SITE" "$@"
    SUT_PID=$LAST_PID
    SUT_URL="http://$HOST:$PORT_SUT/page-5/1"
    export PAGE5_UNIQUE_PATH=/page-5/
}

SYSTEM_oberon_unique_KIND=compose
SYSTEM_oberon_unique_DESC="Oberon rendering service (oberon serve renderer), every page its own data (/page-5/<id>)"
system_oberon_unique_install() { unique_oberon_install; }
system_oberon_unique_start() { unique_oberon_start "$1" serve renderer --host "$HOST" --port "$PORT_SUT"; }
system_oberon_unique_versions() { oberon_versions; }

SYSTEM_oberon_up_unique_KIND=compose
SYSTEM_oberon_up_unique_DESC="Oberon embedded (oberon up: gateway + renderer), every page its own data (/page-5/<id>)"
system_oberon_up_unique_install() { unique_oberon_install; }
system_oberon_up_unique_start() { unique_oberon_start "$1" up --host "$HOST" --port "$PORT_SUT"; }
system_oberon_up_unique_versions() { oberon_versions; }

SYSTEM_tailor_unique_KIND=compose
SYSTEM_tailor_unique_DESC="Zalando Tailor, every page its own data (/page-5/<id> -> /frag-N?p=<id>)"
system_tailor_unique_install() { npm_ci "$PEERS/tailor"; }
system_tailor_unique_start() {
    FRAGMENT_CHANGING=1 start_fragment_server "$1"
    start_proc tailor "$SUT_CPU" env NODE_ENV=production HOST="$HOST" PORT="$PORT_SUT" \
        FRAGMENT_BASE="http://$HOST:$PORT_FRAG" node "$PEERS/tailor/unique.js"
    SUT_PID=$LAST_PID
    SUT_URL="http://$HOST:$PORT_SUT/page-5/1"
    export PAGE5_UNIQUE_PATH=/page-5/
}
system_tailor_unique_versions() { echo "tailor: $(npm_versions "$PEERS/tailor" node-tailor parse5)"; }
