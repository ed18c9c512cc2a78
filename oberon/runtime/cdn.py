"""Running Varnish (Debian's `varnishd`) in front of Oberon with the VCL in `infra/cdn/`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from oberon.exceptions import ConfigError
from oberon.runtime.supervisor import free_port

VCL_DIR = Path(__file__).resolve().parents[2] / "infra" / "cdn"
VCL_FILE = "oberon.vcl"
DEFAULT_STORAGE = "malloc,64m"
START_TIMEOUT = 15.0

BACKEND_VCL = """backend origin {{
    .host = "{host}";
    .port = "{port}";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 5s;
    .probe = {{
        .url = "/_oberon/health";
        .interval = 1s;
        .timeout = 1s;
        .window = 3;
        .threshold = 2;
        .initial = 2;
    }}
}}

# Whose X-Forwarded-Proto/-For Varnish keeps: a TLS terminator in front of it.
acl tls_terminators {{
{terminators}
}}
"""
TLS_TERMINATORS = ("127.0.0.1", "::1")  # a TLS terminator on this host


def varnishd() -> str:
    """The path of `varnishd`; ConfigError says how to install it when it is missing."""
    path = shutil.which("varnishd") or shutil.which("varnishd", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        raise ConfigError("varnishd not found: install Debian's varnish package (apt-get install varnish)")
    return path


def check_vcl(vcl_dir: Path = VCL_DIR) -> None:
    """Compile the VCL (`varnishd -C`); ConfigError carries the compiler's message."""
    with tempfile.TemporaryDirectory(prefix="oberon-vcc-") as workdir:
        Path(workdir).chmod(0o755)  # varnishd's unprivileged child compiles in it
        result = subprocess.run(
            [varnishd(), "-C", "-f", str(vcl_dir / VCL_FILE), "-n", workdir, "-p", f"vcl_path={vcl_dir}"],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        message = result.stderr.strip() or result.stdout.strip()[-2000:]
        raise ConfigError(f"{vcl_dir / VCL_FILE} does not compile:\n{message}")


def _acl_entry(network: str) -> str:
    """`10.0.0.0/8` as VCL writes it in an ACL: `"10.0.0.0"/8`."""
    address, slash, bits = network.partition("/")
    return f'"{address}"/{bits}' if slash else f'"{address}"'


class Varnish:
    """One varnishd process of our own (not the system service), on a loopback port, for an origin."""

    def __init__(
        self,
        *,
        port: int,
        origin_port: int,
        origin_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        vcl_dir: Path = VCL_DIR,
        storage: str = DEFAULT_STORAGE,
        tls_terminators: Sequence[str] = TLS_TERMINATORS,
    ) -> None:
        self.port = port
        self.host = host
        self.origin = (origin_host, origin_port)
        self.vcl_dir = vcl_dir
        self.storage = storage
        self.tls_terminators = tuple(tls_terminators)
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start varnishd in the foreground of its own process and wait until it answers."""
        self._workdir = tempfile.TemporaryDirectory(prefix="oberon-varnish-")
        workdir = Path(self._workdir.name)
        workdir.chmod(0o755)  # varnishd's unprivileged child must read the VCL it includes
        host, port = self.origin
        terminators = "\n".join(f"    {_acl_entry(entry)};" for entry in self.tls_terminators)
        (workdir / "backend.vcl").write_text(BACKEND_VCL.format(host=host, port=port, terminators=terminators))
        admin_port = free_port()
        self.process = subprocess.Popen(
            [
                varnishd(), "-F",
                "-a", f"{self.host}:{self.port}",
                "-T", f"127.0.0.1:{admin_port}",
                "-n", str(workdir / "state"),
                "-f", str(self.vcl_dir / VCL_FILE),
                "-p", f"vcl_path={workdir}:{self.vcl_dir}",
                "-s", self.storage,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.stop()
                raise ConfigError(f"varnishd exited with {self.process.returncode}: {error.strip()}")
            if self._answers():
                return
            time.sleep(0.1)
        self.stop()
        raise ConfigError(f"varnishd did not answer on {self.url} within {START_TIMEOUT}s")

    def _answers(self) -> bool:
        """Whether varnishd's child answers HTTP. Its master takes connections before the child runs (and one
        may then be reset), so a connection alone is not enough. `/metrics` is refused by the VCL itself: the
        probe never reaches the origin."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return sock.recv(16).startswith(b"HTTP/1.1 ")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the varnishd we started (its master takes the child with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Varnish:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
