# Varnish in front of Oberon: caches by the origin's Cache-Control (s-maxage first), serves stale
# within the origin's stale-if-error window when it is down or erroring, never caches for a session,
# purges by surrogate key from the local network, processes ESI islands, and keeps the pages of each canary
# cohort apart (sub oberon_cohort).
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

# Canaries (issue 17). A visitor's bucket (00–99) is in their `oberon_visitor` cookie (`v1.NN.<random>`); the
# canaries that apply to a bucket (its cohort) are what a page varies by. Before a page is looked up, a preflight
# looks up the origin's `/_oberon/cohort/NN` (cached for a second: at most 100 tiny objects) and the page is then
# hashed by that cohort: one extra copy per active canary, not one per bucket. A page request without a valid
# cookie draws a bucket here and, when the origin follows a registry (204), gets a new id: sent to the origin in
# `Cookie` and set on the answer delivered (made `private, no-store`; the stored copy stays public and cookieless).
# A 404 preflight (no registry) changes nothing: no cohort, no cookie. Our bookkeeping in req headers:
# X-Oberon-Page the page's URL while the preflight runs; X-Oberon-Canary on/off/unknown once it has;
# X-Oberon-Bucket, X-Oberon-Visitor (a valid id), X-Oberon-Minted (new here), X-Oberon-Cohort (what to hash by).
sub oberon_cohort {
    if (req.esi_level > 0) {
        # An island: its headers are the browser's as received, so the page's visitor and cohort come from the top.
        if (req_top.http.X-Oberon-Canary) {
            set req.http.X-Oberon-Canary = req_top.http.X-Oberon-Canary;
        }
        if (req_top.http.X-Oberon-Visitor) {
            set req.http.X-Oberon-Visitor = req_top.http.X-Oberon-Visitor;
        }
        if (req_top.http.X-Oberon-Minted) {
            set req.http.X-Oberon-Minted = req_top.http.X-Oberon-Minted;
        }
        if (req_top.http.X-Oberon-Cohort) {
            set req.http.X-Oberon-Cohort = req_top.http.X-Oberon-Cohort;
        }
    } elsif (!req.http.X-Oberon-Canary
            && (req.http.X-Oberon-Page
                || (req.url !~ "^/(_oberon|bff)([/?#]|$)" && req.url ~ "^[^?#]*/[^/.?#]*([?#]|$)"))) {
        # A page (not the platform's paths, a BFF's, or a file name such as /robots.txt): find its cohort first.
        if (!req.http.X-Oberon-Page) {
            if (cookie.get("oberon_visitor") ~ "^v1\.[0-9]{2}\.[A-Za-z0-9_-]{22,64}$") {
                set req.http.X-Oberon-Visitor = cookie.get("oberon_visitor");
                set req.http.X-Oberon-Bucket = regsub(req.http.X-Oberon-Visitor, "^v1\.([0-9]{2})\..*$", "\1");
            } else {
                set req.http.X-Oberon-Bucket = std.integer(real=std.random(0, 100));
                if (req.http.X-Oberon-Bucket ~ "^[0-9]$") {
                    set req.http.X-Oberon-Bucket = "0" + req.http.X-Oberon-Bucket;
                } elsif (req.http.X-Oberon-Bucket !~ "^[0-9]{2}$") {
                    set req.http.X-Oberon-Bucket = "99";
                }
            }
            set req.http.X-Oberon-Page = req.url;
        }
        set req.url = "/_oberon/cohort/" + req.http.X-Oberon-Bucket;
        # A cohort older than its second is not used while the origin is healthy (grace 0: fetched afresh).
        if (!req.http.X-Oberon-Stale && std.healthy(req.backend_hint)) {
            set req.grace = 0s;
        }
        return (hash);
    }
}

# After the preflight (vcl_deliver, or vcl_synth when it failed): back to the page, with its cohort.
sub oberon_cohort_found {
    if (resp.status == 204 && resp.http.X-Oberon-Cohort ~ "^[!-~]{1,200}( [!-~]{1,200}){0,50}$") {
        set req.http.X-Oberon-Canary = "on";
        set req.http.X-Oberon-Cohort = resp.http.X-Oberon-Cohort;
        if (!req.http.X-Oberon-Visitor) {
            # Not a secret (the bucket is for the visitor to see): only an id nobody else draws.
            set req.http.X-Oberon-Visitor = "v1." + req.http.X-Oberon-Bucket + "."
                + std.integer(real=std.random(1000000000, 9999999999))
                + std.integer(real=std.random(1000000000, 9999999999))
                + std.integer(real=std.random(1000000000, 9999999999));
            set req.http.X-Oberon-Minted = "1";
        }
    } elsif (resp.status == 503) {
        # The origin failed and no cohort is kept: the page as a site without canaries asks for it (once, then any
        # stale copy), keyed as the stable cohort's, and with no visitor (the origin renders it stable).
        set req.http.X-Oberon-Canary = "unknown";
        unset req.http.X-Oberon-Stale;
    } else {
        set req.http.X-Oberon-Canary = "off";
    }
    set req.url = req.http.X-Oberon-Page;
    unset req.http.X-Oberon-Page;
    unset req.http.X-Oberon-Fresh;
}

# One object per page, not per spelling of its URL (issue 18): tracking parameters (utm_*, gclid, fbclid, msclkid,
# mc_cid, mc_eid) are dropped, as the gateway drops them, and the rest sorted. The renderer reads only an app's
# declared parameters, so `?utm_source=x&q=jazz` and `?q=jazz` are one page.
sub oberon_query {
    if (req.url ~ "\?") {
        # The query alone ("?…"), so that nothing in the path is ever taken for a parameter.
        set req.http.X-Oberon-Query = regsub(req.url, "^[^?]*", "");
        set req.http.X-Oberon-Query = regsuball(req.http.X-Oberon-Query,
            "(?i)(?<=[?&])(utm_[^&=]*|gclid|fbclid|msclkid|mc_cid|mc_eid)(=[^&]*)?(&|$)", "");
        set req.http.X-Oberon-Query = regsub(req.http.X-Oberon-Query, "[?&]+$", "");
        set req.url = std.querysort(regsub(req.url, "\?.*$", "") + req.http.X-Oberon-Query);
        unset req.http.X-Oberon-Query;
    }
}

# The device class, as the gateway reads it from User-Agent (gateway/context.py device_class), set before the
# lookup: a page whose data read it says `Vary: X-Oberon-Device`, and each class then gets its own object. Always
# ours, never the client's (the gateway replaces it too, from the same User-Agent).
sub oberon_device {
    if (req.http.User-Agent ~ "(?i)bot|crawl|spider|slurp|facebookexternalhit|preview") {
        set req.http.X-Oberon-Device = "bot";
    } elsif (req.http.User-Agent ~ "(?i)ipad|tablet|kindle|silk|playbook|android(?!.*mobile)") {
        set req.http.X-Oberon-Device = "tablet";
    } elsif (req.http.User-Agent ~ "(?i)mobi|iphone|ipod|android|blackberry|opera mini|iemobile|windows phone") {
        set req.http.X-Oberon-Device = "mobile";
    } else {
        set req.http.X-Oberon-Device = "desktop";
    }
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
    if (req.restarts == 0) {
        # The canary bookkeeping is ours alone, never a client's (an island's headers are the browser's too).
        unset req.http.X-Oberon-Page;
        unset req.http.X-Oberon-Canary;
        unset req.http.X-Oberon-Bucket;
        unset req.http.X-Oberon-Visitor;
        unset req.http.X-Oberon-Minted;
        unset req.http.X-Oberon-Cohort;
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
    if (req.restarts == 0) {
        call oberon_query;
    }
    call oberon_device;
    # Pages vary by language: keep only the first language's primary tag so the variants stay few.
    if (req.http.Accept-Language ~ "^\s*[A-Za-z]{2,3}") {
        set req.http.Accept-Language = std.tolower(regsub(req.http.Accept-Language, "^\s*([A-Za-z]{2,3}).*$", "\1"));
    } else {
        unset req.http.Accept-Language;
    }

    cookie.parse(req.http.Cookie);
    call oberon_cohort;  # a page's cohort first: this may look up /_oberon/cohort/NN and come back by a restart

    # A request carrying a session (its https name is __Host-oberon_session) is never answered from, nor stored in,
    # the shared cache.
    if (cookie.isset("oberon_session") || cookie.isset("__Host-oberon_session")) {
        if (req.http.X-Oberon-Minted) {
            cookie.set("oberon_visitor", req.http.X-Oberon-Visitor);
            set req.http.Cookie = cookie.get_string();
        }
        set req.http.X-Oberon-Cache = "PASS";
        return (pass);
    }
    # Any other cookie (analytics, consent…) does not change a public page: drop it so the page stays cacheable.
    # The visitor's id goes on to the origin (the gateway tells the renderer its bucket); the page is hashed by cohort.
    unset req.http.Cookie;
    if (req.http.X-Oberon-Canary == "on" && req.http.X-Oberon-Visitor) {
        set req.http.Cookie = "oberon_visitor=" + req.http.X-Oberon-Visitor;
    }
    if (req.http.Authorization) {
        set req.http.X-Oberon-Cache = "PASS";
        return (pass);
    }

    if (req.http.X-Oberon-Stale) {
        set req.grace = 365d;  # any copy within its own grace (req.grace survives restarts)
    } elsif (req.http.X-Oberon-Fresh) {
        set req.grace = 0s;
    } else {
        set req.grace = 365d;  # each copy's own grace, as if unset (the preflight may have set 0s)
    }
    return (hash);
}

# A page fetched over https is kept apart from one over http (the origin's answer may differ by scheme), and a
# page of a canary cohort from the stable one (the stable cohort shares the copies of a site without a registry).
sub vcl_hash {
    hash_data(req.http.X-Forwarded-Proto);
    if (req.http.X-Oberon-Cohort && req.http.X-Oberon-Cohort != "stable") {
        hash_data(req.http.X-Oberon-Cohort);
    }
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

# The cohort lookup asks as nobody: it is the same for every visitor of a bucket. The canary bookkeeping stays
# here (the gateway would drop it anyway), but for the cohort a page is fetched for, which the answer is checked by.
sub vcl_backend_fetch {
    if (bereq.url ~ "^/_oberon/cohort/") {
        unset bereq.http.Cookie;
        unset bereq.http.Authorization;
    }
    unset bereq.http.X-Oberon-Page;
    unset bereq.http.X-Oberon-Canary;
    unset bereq.http.X-Oberon-Bucket;
    unset bereq.http.X-Oberon-Visitor;
    unset bereq.http.X-Oberon-Minted;
}

sub vcl_backend_response {
    if (bereq.url ~ "^/_oberon/cohort/[0-9]{2}$" && beresp.status < 500) {
        # Kept an hour past its second, for an origin outage (used then only); an origin without a registry
        # answers 404 (or anything but 204), kept 60 s whatever it says, so such a site costs the origin nothing.
        set beresp.grace = 1h;
        if (beresp.status != 204) {
            unset beresp.http.Set-Cookie;
            set beresp.ttl = 60s;
            set beresp.uncacheable = false;
            return (deliver);
        }
    }
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
    if (bereq.http.X-Oberon-Cohort && beresp.http.X-Oberon-Cohort != bereq.http.X-Oberon-Cohort) {
        # Rendered for another cohort than it would be stored under (a ramp between the preflight and this fetch,
        # or an answer that does not say): delivered to this visitor, never stored for others.
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
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
    if (resp.status == 503 && req.http.X-Oberon-Page && req.esi_level == 0) {
        # No cohort, fresh or stale: on to the page itself.
        call oberon_cohort_found;
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
    if (req.http.X-Oberon-Page && req.esi_level == 0) {
        call oberon_cohort_found;
        return (restart);
    }
    if (req.http.X-Oberon-Minted && req.esi_level == 0 && !resp.http.Set-Cookie) {
        # A new visitor: their id on this answer alone (the copy stored stays public and cookieless). An answer that
        # sets a cookie of its own (uncached) goes without: the next page draws again.
        set resp.http.Set-Cookie = "oberon_visitor=" + req.http.X-Oberon-Visitor
            + "; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly";
        if (req.http.X-Forwarded-Proto == "https") {
            set resp.http.Set-Cookie = resp.http.Set-Cookie + "; Secure";
        }
        set resp.http.Cache-Control = "private, no-store";
    }
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
