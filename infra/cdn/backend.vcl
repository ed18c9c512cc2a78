# The origin (Oberon's gateway). `oberon up --cdn` writes its own copy of this file with the
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
