"""Self-signed TLS material for loopback tests (uses the ``openssl`` command).

Owns: self-signed TLS material for loopback.  Must not: be used outside tests.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess

__all__ = ["client_ssl_context", "make_self_signed_cert", "server_ssl_context"]


def make_self_signed_cert(directory: str | os.PathLike[str]) -> tuple[str, str]:
    """Create a self-signed EC (prime256v1) certificate for ``localhost`` and ``127.0.0.1``.

    Args:
        directory: Existing directory to write ``cert.pem`` and ``key.pem`` into.

    Returns:
        ``(certfile, keyfile)`` paths.  The certificate is its own CA: give
        ``certfile`` to clients as the trusted CA (``client_ssl_context``, or
        ``sslopt={"ca_certs": certfile}`` for websocket-client).

    Raises:
        FileNotFoundError: The ``openssl`` command is not installed.
        subprocess.CalledProcessError: ``openssl`` failed.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the openssl command is needed to make a test certificate")
    certfile = os.path.join(os.fspath(directory), "cert.pem")
    keyfile = os.path.join(os.fspath(directory), "key.pem")
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "3650", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", keyfile, "-out", certfile,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certfile, keyfile


def server_ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server-side context serving ``certfile``/``keyfile``.

    Args:
        certfile: PEM certificate.
        keyfile: PEM private key.

    Returns:
        An ``SSLContext`` for ``RealtimeServer(ssl_context=...)``.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def client_ssl_context(certfile: str) -> ssl.SSLContext:
    """A client-side context that trusts exactly ``certfile`` (hostname checks stay on).

    Args:
        certfile: The test server's certificate (it is its own CA).

    Returns:
        An ``SSLContext`` for clients connecting to ``wss://localhost`` or ``wss://127.0.0.1``.
    """
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certfile)
