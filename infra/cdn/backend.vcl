# The origin (Oberon's gateway), and the TLS terminators in front of Varnish. `oberon up --cdn` writes its own copy of this file with the
# gateway's real port into Varnish's working directory, which comes first on vcl_path.
backend origin {
    .host = "127.0.0.1";
    .port = "8000";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 5s;
    .probe = {
        .url = "/_oberon/health";
        .interval = 1s;
        .timeout = 1s;
        .window = 3;
        .threshold = 2;
        .initial = 2;
    }
}

# Who may say the browser used https (X-Forwarded-Proto) and who the client was (X-Forwarded-For):
# a TLS terminator in front of Varnish. Locally that is one on this host; list yours.
acl tls_terminators {
    "127.0.0.1";
    "::1";
}
