"""Opening a connection that another thread can abort at any point (``rtedge.transport._dial``).

Before, websocket-client's one blocking ``connect`` gave another thread no socket to shut down until the
TCP (and TLS) handshake was done: an abort waited out the whole connect timeout."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable

import pytest

from rtedge.errors import TransportError
from rtedge.testing import RealtimeServer, make_self_signed_cert
from rtedge.testing._tls import server_ssl_context
from rtedge.transport import _dial
from rtedge.transport._ws import WsConnection

from ..conftest import audit, wait_until
from ..unanswered import SilentServer, SynDropper


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


class Opening:
    """``WsConnection.open(url)`` on a thread named as the sender (the one that opens connections and
    releases them); a connection that opens is released at once."""

    def __init__(self, url: str, timeout: float = 60.0, **options: object) -> None:
        self.conn: list[WsConnection] = []
        self.result: list[object] = []
        self.thread = threading.Thread(target=self._open, args=(url, timeout, options), name=audit.WRITER)
        self.thread.start()

    def _open(self, url: str, timeout: float, options: dict) -> None:  # type: ignore[type-arg]
        try:
            opened = WsConnection.open(url, {}, timeout=timeout, pending=self.conn.append,
                                       **options)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the test reads it
            self.result.append(exc)
        else:
            opened.shutdown()  # the tests need only to know that it opened
            self.result.append(opened)

    def outcome(self, timeout: float = 10.0) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the connection attempt did not give up"
        return self.result[0]


def _aborted_when(ready: Callable[[], bool], opening: Opening) -> object:
    assert wait_until(ready, timeout=20), "the attempt never got there"
    opening.conn[0].abort()
    return opening.outcome()


def test_an_abort_ends_a_tcp_handshake_the_server_never_completes():
    with SynDropper() as dropper:
        opening = Opening(dropper.url())
        outcome = _aborted_when(dropper.connecting, opening)  # long before the 60 s timeout
    assert isinstance(outcome, TransportError) and "aborted" in str(outcome)


def test_an_abort_ends_a_tls_handshake_the_server_never_answers():
    with SilentServer() as silent:
        opening = Opening(silent.url("wss"))
        silent.accept()  # the client hello is on its way
        outcome = _aborted_when(lambda: bool(opening.conn) and opening.conn[0]._dialing is not None, opening)
    assert isinstance(outcome, TransportError), outcome


def test_a_tcp_handshake_that_never_completes_times_out():
    with SynDropper() as dropper:
        outcome = Opening(dropper.url(), timeout=0.3).outcome()
    assert isinstance(outcome, TransportError) and "TimeoutError" in str(outcome), outcome


def test_a_refused_address_is_skipped_for_the_next(unused_tcp_port_pair):
    refused, listening = unused_tcp_port_pair
    addresses = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", p))
                 for p in (refused.getsockname()[1], listening.getsockname()[1])]
    with _dial._connect(addresses, 5.0, lambda: False) as sock:
        assert sock.getpeername() == listening.getsockname()
    with pytest.raises(ConnectionRefusedError) as caught:
        _dial._connect(addresses[:1], 5.0, lambda: False)
    assert caught.value.errno == errno.ECONNREFUSED


@pytest.fixture
def unused_tcp_port_pair():
    """A port nothing listens on (bound, not listening: connections are refused) and a listening one."""
    with socket.socket() as refused, socket.create_server(("127.0.0.1", 0)) as listening:
        refused.bind(("127.0.0.1", 0))
        yield refused, listening


def test_tls_verifies_against_ca_certs_or_refuses(tls_files):
    """rtedge's own TLS set-up keeps websocket-client's: ``ca_certs`` is trusted, and without it the
    system's store is, so a self-signed server is refused."""
    cert, key = tls_files
    with RealtimeServer(realtime=False, ssl_context=server_ssl_context(cert, key)) as srv:
        opened = Opening(srv.url, timeout=10, ca_certs=cert).outcome()
        assert isinstance(opened, WsConnection), opened
        refused = Opening(srv.url, timeout=10).outcome()
        assert isinstance(refused, TransportError) and "CERTIFICATE_VERIFY_FAILED" in str(refused)


@pytest.mark.parametrize(("env", "url", "expected"), [
    ({}, "wss://api.example/v1", False),
    ({"https_proxy": "http://proxy:3128"}, "wss://api.example/v1", True),
    ({"HTTPS_PROXY": "http://proxy:3128"}, "WSS://api.example/v1", True),
    ({"https_proxy": "http://proxy:3128"}, "ws://api.example/v1", False),
    ({"http_proxy": "http://proxy:3128"}, "ws://api.example/v1", True),
    ({"http_proxy": " "}, "ws://api.example/v1", False),
    # a local server exempted from the proxy: rtedge dials it (and can abort the attempt)
    ({"http_proxy": "http://proxy:3128", "no_proxy": "localhost,127.0.0.1"}, "ws://127.0.0.1:8765/v1", False),
    ({"https_proxy": "http://proxy:3128", "NO_PROXY": ".example"}, "wss://api.example/v1", False),
])
def test_a_proxy_in_the_environment_leaves_dialing_to_websocket_client(monkeypatch, env, url, expected):
    from rtedge.transport import _ws

    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert _ws._proxied(url) is expected


def test_a_ca_bundle_directory_is_trusted_and_a_bad_bundle_is_named(tls_files, tmp_path, monkeypatch):
    """WEBSOCKET_CLIENT_CA_BUNDLE may name a directory of hashed certificates (websocket-client's capath);
    a CA file that cannot be loaded is named in the error."""
    import shutil
    import subprocess

    cert, key = tls_files
    hashed = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", cert], capture_output=True,
                            text=True, check=True).stdout.strip()
    shutil.copy(cert, tmp_path / f"{hashed}.0")
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(tmp_path))
    with RealtimeServer(realtime=False, ssl_context=server_ssl_context(cert, key)) as srv:
        assert isinstance(Opening(srv.url, timeout=10).outcome(), WsConnection)
        missing = Opening(srv.url, timeout=10, ca_certs=str(tmp_path / "none.pem")).outcome()
    assert isinstance(missing, TransportError)
    assert f"the CA certificates in {tmp_path / 'none.pem'} cannot be loaded" in str(missing)


def test_tls_checks_the_host_name_against_the_certificate(tls_files):
    """The certificate is trusted (ca_certs) but names 127.0.0.1 and localhost, not 127.0.0.2."""
    cert, key = tls_files
    with RealtimeServer(realtime=False, host="127.0.0.2", ssl_context=server_ssl_context(cert, key)) as srv:
        refused = Opening(srv.url, timeout=10, ca_certs=cert).outcome()
    assert isinstance(refused, TransportError) and "CERTIFICATE_VERIFY_FAILED" in str(refused), refused
    assert "mismatch" in str(refused)
