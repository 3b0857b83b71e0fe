"""URLs as rtedge logs them: no credential survives, the endpoint stays recognisable."""

from __future__ import annotations

import pytest

import rtedge
from rtedge.protocol.dialects.base import redact_url, url_secrets
from rtedge.testing import RealtimeServer


@pytest.mark.parametrize("query", [
    "authorization=S3CR3T", "password=S3CR3T", "auth=S3CR3T", "jwt=S3CR3T", "pass=S3CR3T",
    "credential=S3CR3T",
    "api-key=S3CR3T", "access_token=S3CR3T", "X-Amz-Signature=S3CR3T", "S3CR3T", "model=m&session=S3CR3T"])
def test_every_query_value_but_the_endpoints_own_is_hidden(query):
    """Only names containing key/token/secret/sig were hidden: authorization=, password=, jwt=... leaked
    into reprs, exceptions and check-config's output."""
    shown = redact_url(f"wss://example.com/v1/realtime?{query}")
    assert "S3CR3T" not in shown and "***" in shown, shown
    assert shown.startswith("wss://example.com/v1/realtime?")


def test_the_endpoints_own_parameters_stay_readable():
    url = ("wss://r.openai.azure.com/openai/realtime"
           "?api-version=2025-04-01&deployment=gpt&model=m&intent=transcription")
    assert redact_url(url) == url


def test_fragments_and_user_info_are_hidden():
    shown = redact_url("wss://user:pw-S3CR3T@example.com/v1/realtime?model=m#token=S3CR3T")
    assert shown == "wss://***@example.com/v1/realtime?model=m#***"


def test_a_client_repr_and_a_connect_error_show_no_query_secret():
    with RealtimeServer(realtime=False) as srv:
        with rtedge.connect(url=srv.url + "?authorization=S3CR3T-A&password=S3CR3T-B") as c:
            assert "S3CR3T" not in repr(c) and "authorization=***" in repr(c)
    with pytest.raises(rtedge.TransportError) as info:
        rtedge.connect(url="ws://127.0.0.1:9/v1/realtime?auth=S3CR3T-C", connect_timeout=2)
    assert "S3CR3T" not in str(info.value) and "auth=***" in str(info.value)


def test_the_trace_scrubs_long_hidden_values_only():
    """The wire trace scrubs url_secrets() from its JSON text: a short word (true, json) would break lines."""
    url = "wss://h.example/v1/realtime?model=gpt-realtime&beta=true&authorization=S3CR3T-LONG&sk-BARE-KEY-1"
    assert url_secrets(url) == ["S3CR3T-LONG", "sk-BARE-KEY-1"]


@pytest.mark.parametrize("url, shown", [
    # an "@" in a query value is no user info: the key after it was shown whole ("wss://***@b&api-key=...")
    ("wss://api.example.com/v1/realtime?model=a@b&api-key=S3CR3T",
     "wss://api.example.com/v1/realtime?model=a%40b&api-key=***"),
    ("wss://example.com/v1/realtime?key=S3CR3T#frag@x", "wss://example.com/v1/realtime?key=***#***"),
    ("wss://example.com/p@th/realtime?k=S3CR3T", "wss://example.com/p@th/realtime?k=***"),
    # a password holding "/", "?" or "#" (not percent-encoded) ends the standard authority early
    ("wss://user:pw/S3CR3T@example.com/v1/realtime?model=m", "wss://***@example.com/v1/realtime?model=m"),
    ("wss://user:pw?S3CR3T@example.com/v1/realtime?api-key=S3CR3T",
     "wss://***@example.com/v1/realtime?api-key=***"),
    ("wss://user:p@ss-S3CR3T@example.com:8443/v1", "wss://***@example.com:8443/v1"),
    ("wss://user:S3CR3T@[::1]:8765/v1/realtime", "wss://***@[::1]:8765/v1/realtime"),
    # no host to be found after any "@": nothing after the scheme is shown
    ("wss://user:pw/S3CR3T@/v1", "wss://***"),
])
def test_an_at_sign_is_user_info_only_before_the_host(url, shown):
    assert redact_url(url) == shown
