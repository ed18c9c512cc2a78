# Varnish in front of Oberon: caches by the origin's Cache-Control (s-maxage first), serves stale
# within the origin's stale-if-error window when it is down or erroring, never caches for a session,
# purges by surrogate key from the local network, and processes ESI islands.
vcl 4.1;

import cookie;
import std;

include "backend.vcl";

# Who may PURGE through the CDN: the local network only.
acl local_network {
    "127.0.0.1";
    "::1";
}

# /metrics, /_oberon/registry and /_oberon/degradation live on each service's internal admin listener,
# never behind the CDN: 404 for every spelling of them, from anywhere (the gateway refuses them too).
# The path is read as the most lenient server would: lower case, the characters of those names and
# the separators percent-decoded (`%25` twice, for double encoding), `\` as `/`, no `//`, no dot segments.
sub refuse_internal_paths {
    set req.http.X-Oberon-Path = std.tolower(regsub(req.url, "[?#].*$", ""));
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%25", "%");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%25", "%");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%(2f|5c)", "/");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%2e", ".");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%5f", "_");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%61", "a");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%62", "b");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%63", "c");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%64", "d");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%65", "e");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%67", "g");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%69", "i");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%6d", "m");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%6e", "n");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%6f", "o");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%72", "r");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%73", "s");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%74", "t");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "%79", "y");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "\\", "/");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "/+", "/");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "/(\.(/|$))+", "/");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "/[^/]*/\.\.(/|$)", "/");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "/[^/]*/\.\.(/|$)", "/");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "/[^/]*/\.\.(/|$)", "/");
    set req.http.X-Oberon-Path = regsuball(req.http.X-Oberon-Path, "^(/\.\.)+(/|$)", "/");
    if (req.http.X-Oberon-Path ~ "^/(metrics|_oberon/(registry|degradation))(/|$)") {
        unset req.http.X-Oberon-Path;
        return (synth(404, "Not Found"));
    }
    unset req.http.X-Oberon-Path;
}

sub vcl_recv {
    set req.backend_hint = origin;

    # Headers an attacker could use to change what the origin renders into a shared entry.
    unset req.http.X-Forwarded-Host;
    unset req.http.X-Forwarded-Server;
    unset req.http.X-Host;
    unset req.http.X-Original-URL;
    unset req.http.X-Rewrite-URL;
    unset req.http.Forwarded;
    # The scheme the browser used: a TLS terminator in front (acl tls_terminators, in backend.vcl) says it
    # in X-Forwarded-Proto; anyone else's is replaced by what Varnish itself saw (plain http), and the
    # client address is the connection's (the gateway believes both from Varnish, OBERON_TRUSTED_PROXIES).
    std.collect(req.http.X-Forwarded-Proto);  # two of them read as "https, http", which is not believed
    if (client.ip ~ tls_terminators && req.http.X-Forwarded-Proto ~ "^(?i)(https?)$") {
        set req.http.X-Forwarded-Proto = std.tolower(req.http.X-Forwarded-Proto);
    } else {
        set req.http.X-Forwarded-Proto = "http";
        if (req.restarts == 0 && req.esi_level == 0) {
            set req.http.X-Forwarded-For = client.ip;
            # The gateway adopts Varnish's request id, and the answer may be shared: never a client's own.
            unset req.http.X-Request-Id;
        }
    }
    if (req.esi_level == 0 && req.restarts == 0) {
        unset req.http.X-Oberon-Stale;
        unset req.http.X-Oberon-Fresh;
    }

    if (req.method == "PURGE") {
        if (client.ip !~ local_network) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.Surrogate-Key !~ "^[A-Za-z0-9:_-]+$") {
            return (synth(400, "Surrogate-Key must be one key of letters, digits and :_-"));
        }
        ban("obj.http.Surrogate-Key ~ (^|\s)" + req.http.Surrogate-Key + "(\s|$)");
        return (synth(200, "Purged " + req.http.Surrogate-Key));
    }
    call refuse_internal_paths;
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Pages vary by language: keep only the first language's primary tag so the variants stay few.
    if (req.http.Accept-Language ~ "^\s*[A-Za-z]{2,3}") {
        set req.http.Accept-Language = std.tolower(regsub(req.http.Accept-Language, "^\s*([A-Za-z]{2,3}).*$", "\1"));
    } else {
        unset req.http.Accept-Language;
    }

    # A request carrying a session (its https name is __Host-oberon_session) is never answered from, nor stored in,
    # the shared cache.
    cookie.parse(req.http.Cookie);
    if (cookie.isset("oberon_session") || cookie.isset("__Host-oberon_session")) {
        set req.http.X-Oberon-Cache = "PASS";
        return (pass);
    }
    # Any other cookie (analytics, consent…) does not change a public page: drop it so the page stays cacheable.
    unset req.http.Cookie;
    if (req.http.Authorization) {
        set req.http.X-Oberon-Cache = "PASS";
        return (pass);
    }

    if (req.http.X-Oberon-Stale) {
        set req.grace = 365d;  # any copy within its own grace (req.grace survives restarts)
    } elsif (req.http.X-Oberon-Fresh) {
        set req.grace = 0s;
    }
    return (hash);
}

# A page fetched over https is kept apart from one over http (the origin's answer may differ by scheme).
sub vcl_hash {
    hash_data(req.http.X-Forwarded-Proto);
}

# A stale object (within its grace, i.e. the origin's stale-if-error) is served when the origin is
# sick or has just failed this request; while the origin is healthy only within the origin's
# stale-while-revalidate (refetched in the background), else the request waits for a fresh copy.
sub vcl_hit {
    if (obj.ttl >= 0s || req.http.X-Oberon-Stale || !std.healthy(req.backend_hint)) {
        return (deliver);
    }
    if (obj.ttl + std.duration(obj.http.X-Oberon-SWR + "s", 0s) > 0s) {
        return (deliver);
    }
    # Look again without grace: a fresh fetch, with the stale copy kept for an origin failure.
    set req.http.X-Oberon-Fresh = "1";
    return (restart);
}

sub vcl_miss {
    if (req.http.X-Oberon-Stale) {
        # Restarted after an origin failure and still no copy: do not ask the failing origin again.
        return (synth(503, "Origin unavailable"));
    }
}

sub vcl_backend_response {
    set beresp.http.X-Oberon-SWR = "0";
    if (beresp.http.Cache-Control ~ "stale-while-revalidate=[0-9]+") {
        set beresp.http.X-Oberon-SWR = regsub(beresp.http.Cache-Control, "^.*stale-while-revalidate=([0-9]+).*$", "\1");
    }
    # Varnish 7.1 does not read stale-if-error: take the grace from it.
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+") {
        set beresp.grace = std.duration(
            regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1") + "s", 0s);
    }
    if (beresp.status >= 500 && bereq.is_bgfetch) {
        # Keep serving the stale copy rather than replacing it with an error.
        return (abandon);
    }
    if (beresp.status >= 500 && bereq.method == "GET" && !bereq.uncacheable) {
        return (abandon);
    }
    if (!beresp.http.Cache-Control) {
        # Oberon states every response's cacheability; what does not say so (metrics, health) is not kept.
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
    }
    if (beresp.http.Surrogate-Control ~ "ESI/1.0") {
        unset beresp.http.Surrogate-Control;
        set beresp.do_esi = true;
    }
    # Builtin rules then refuse to cache Set-Cookie, private, no-store, no-cache and Vary: *.
}

sub vcl_backend_error {
    if (!bereq.uncacheable) {
        return (abandon);
    }
}

sub vcl_synth {
    # An abandoned fetch (origin down or erroring) comes here as a 503: look for a stale copy once.
    if (resp.status == 503 && !req.http.X-Oberon-Stale
            && (req.method == "GET" || req.method == "HEAD") && req.esi_level == 0) {
        set req.http.X-Oberon-Stale = "1";
        return (restart);
    }
    if (resp.status == 503) {
        set resp.http.Content-Type = "text/html; charset=utf-8";
        set resp.http.Cache-Control = "no-store";
        set resp.http.Retry-After = "5";
        set resp.http.X-Cache = "MISS";
        synthetic({"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Temporarily unavailable</title></head><body><main><h1>Temporarily unavailable</h1><p>This page cannot be shown right now. Please try again in a moment.</p></main></body></html>"});
        return (deliver);
    }
}

sub vcl_deliver {
    if (req.http.X-Oberon-Cache == "PASS") {
        set resp.http.X-Cache = "PASS";
    } elsif (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } elsif (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    if (req.http.X-Oberon-Stale) {
        set resp.http.X-Cache = resp.http.X-Cache + " STALE";
    }
    set resp.http.X-Cache-Hits = obj.hits;
    # Surrogate keys and our own bookkeeping are for the CDN, not for browsers.
    unset resp.http.Surrogate-Key;
    unset resp.http.X-Oberon-SWR;
}
