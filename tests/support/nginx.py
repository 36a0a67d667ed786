"""The shipped ``deploy/nginx/throttled.conf`` run by Debian's ``nginx`` in front of a daemon,
with a self-signed certificate made here (``cryptography``).

The file is used as shipped; only the lines marked ``test:`` (and the upstream address) are
substituted: the port, the server name, the certificate and the upstream keep-alive time.
nginx runs in the foreground as one process (``master_process off``) with its temporary
folders and pid file in a folder of its own, removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.processes import debian_binary, stop, wait_for_port

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "throttled.conf"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for ``127.0.0.1`` and ``localhost`` and its key; returns their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throttled test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def site_config(upstream_port: int, port: int, cert: Path, key: Path, upstream_keepalive: str) -> str:
    """The shipped site file with the test's values in place of the operator's."""
    text = SHIPPED.read_text()
    for old, new in (("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};"),
                     ("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
                     ("server_name throttle.example.com;", "server_name 127.0.0.1;"),
                     ("/etc/letsencrypt/live/throttle.example.com/fullchain.pem", str(cert)),
                     ("/etc/letsencrypt/live/throttle.example.com/privkey.pem", str(key)),
                     ("keepalive_timeout 20s;", f"keepalive_timeout {upstream_keepalive};")):
        assert old in text, f"{SHIPPED.name} no longer has {old!r}"
        text = text.replace(old, new)
    return text


@contextmanager
def running_nginx(upstream_port: int, port: int, *, upstream_keepalive: str = "20s") -> Iterator[Path]:
    """nginx on ``127.0.0.1:port`` (TLS) proxying to the daemon on ``upstream_port``; yields
    the certificate's path (to verify against)."""
    binary = debian_binary("nginx", package="nginx-light")
    folder = Path(tempfile.mkdtemp(prefix="thr-nginx-"))
    cert, key = self_signed(folder)
    (folder / "site.conf").write_text(site_config(upstream_port, port, cert, key, upstream_keepalive))
    temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    (folder / "nginx.conf").write_text("\n".join([
        "daemon off;", "master_process off;", f"pid {folder / 'nginx.pid'};", f"error_log {folder / 'error.log'} info;",
        "events { worker_connections 1024; }",
        "http {", f"  access_log {folder / 'access.log'};",
        f"  client_body_temp_path {temp['body']};", f"  proxy_temp_path {temp['proxy']};",
        f"  fastcgi_temp_path {temp['fastcgi']};", f"  uwsgi_temp_path {temp['uwsgi']};",
        f"  scgi_temp_path {temp['scgi']};", f"  include {folder / 'site.conf'};", "}", ""]))
    process = subprocess.Popen([binary, "-e", str(folder / "startup.log"), "-p", str(folder),
                                "-c", str(folder / "nginx.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, "nginx", lambda: "".join(
            p.read_text() for p in (folder / "startup.log", folder / "error.log") if p.exists()))
        yield cert
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)
