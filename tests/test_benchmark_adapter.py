"""examples/benchmark_adapter.py: public names only, and the tick contract a harness relies on."""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import subprocess
import sys
from types import ModuleType

import numpy as np
import pytest

import rtedge
from rtedge.testing import RealtimeServer
from tests.conftest import REPO
from tests.voice.test_tick import LONG, ulaw_speech, ulaw_tone

pytestmark = pytest.mark.usefixtures("no_thread_leak")

EXAMPLE = REPO / "examples" / "benchmark_adapter.py"
N = 1600  # bytes per 200 ms tick of 8 kHz mu-law


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_adapter", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


def private_uses(source: str) -> list[str]:
    """Private names the code reaches into: imported, or attributes of anything but its own ``self``."""
    tree = ast.parse(source)
    own = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    own |= {t.id for n in ast.walk(tree) if isinstance(n, ast.AnnAssign) for t in [n.target]
            if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".") + [a.name for a in node.names]
            found += [f"from {node.module} import {a.name}" for a in node.names if any(
                p.startswith("_") and not p.startswith("__") for p in parts)]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if any(p.startswith("_") for p in a.name.split("."))]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            mine = isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in own
            if not mine:
                found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_the_example_reaches_into_no_private_name():
    assert private_uses(EXAMPLE.read_text()) == []
    # the check itself catches what it must
    assert private_uses("from rtedge.voice._tick_engine import TickEngine") != []
    assert private_uses("import rtedge.transport._link") != []
    assert private_uses("def f(ts):\n    return ts.client._session") != []
    assert private_uses("class A:\n    _x: int = 0\n    def f(self):\n        return self._x") == []


def wire_input(srv: RealtimeServer) -> bytes:
    appends = [e for e in srv.received if e["type"] == "input_audio_buffer.append"]
    return b"".join(base64.b64decode(e["audio"]) for e in appends)


def agent_sent(srv: RealtimeServer) -> bytes:
    deltas = [e for e in srv.sent if e["type"] == "response.output_audio.delta"]
    return b"".join(base64.b64decode(e["delta"]) for e in deltas)


def test_the_adapter_keeps_the_tick_contract():
    example = load_example()
    rng = np.random.default_rng(7)
    question = ulaw_speech("Read me the whole policy, please.").tobytes()
    with RealtimeServer(realtime=False, seed=31, reply_text=LONG) as srv:
        adapter = example.TickAdapter(tick_ms=200, url=srv.url, sync="barrier")
        adapter.connect("You read policies aloud.")
        assert adapter.is_connected
        given, ticks = bytearray(), []

        def tick(audio: bytes) -> None:
            given.extend(audio)
            ticks.append(adapter.run_tick(audio))

        pos = 0
        while pos < len(question):  # the question in uneven chunks: 0 to 3 ticks each
            size = int(rng.integers(0, 3 * N + 1))
            tick(question[pos:pos + size])
            pos += size
        while sum(t.agent_audio_bytes for t in ticks) < 8 * N:  # the answer plays for a while...
            tick(b"\x7f" * int(rng.integers(0, 2 * N)))
            assert len(ticks) < 200
        tone_at_ms = (len(given) + N // 2) / 8  # where the tone starts on the input clock
        tick(b"\x7f" * (N // 2) + ulaw_tone(600).tobytes())  # ...and the caller talks over it
        while sum(len(t.usage_records) for t in ticks) < 2 or ticks[-1].agent_audio_bytes:
            tick(b"")  # until the answer to the barge-in has played
            assert len(ticks) < 600
        adapter.disconnect()
    assert not adapter.is_connected and adapter.close_reason == "closed by the caller"
    # lengths: every tick exactly one tick both ways, numbered from 1
    assert [t.tick_number for t in ticks] == list(range(1, len(ticks) + 1))
    assert all(len(t.played_agent_audio) == N for t in ticks)
    wire = wire_input(srv)
    assert len(wire) == N * len(ticks)
    assert [t.user_audio_at_tick_start_ms for t in ticks] == [200.0 * i for i in range(len(ticks))]
    # conservation of the caller's audio across carried input: all of it, in order, byte for byte
    caller = b"".join(wire[i * N:i * N + t.user_audio_sent_bytes] for i, t in enumerate(ticks))
    assert caller == bytes(given) and ticks[-1].user_audio_carried_bytes == 0
    assert max(t.user_audio_carried_bytes for t in ticks) > N
    # conservation of the agent's audio: played + dropped by the barge-in = what the server sent
    cut = [t for t in ticks if t.was_truncated]
    assert len(cut) == 1 and cut[0].vad_events[:2] == ["speech_started", "interrupted"]
    played = sum(t.agent_audio_bytes for t in ticks)
    assert played + cut[0].truncated_audio_bytes == len(agent_sent(srv))
    # barge-in: the item is truncated at the audio the caller heard, from the speech onset on
    heard_before_cut = sum(t.agent_audio_bytes for t in ticks if t.tick_number <= cut[0].tick_number)
    truncate = next(e for e in srv.received if e["type"] == "conversation.item.truncate")
    assert truncate["audio_end_ms"] == heard_before_cut // 8
    onset = [e for e in srv.sent if e["type"] == "input_audio_buffer.speech_started"][1]
    assert cut[0].interruption_audio_start_ms == onset["audio_start_ms"]
    speech_at_ms = onset["audio_start_ms"] + 300  # the server's onset: audio_start_ms + prefix padding
    assert 0 <= tone_at_ms - speech_at_ms < 20  # (its VAD works in 20 ms frames)
    at = round(8 * (speech_at_ms - cut[0].user_audio_at_tick_start_ms))  # the onset's byte in the cut tick
    assert 0 < at < N and cut[0].agent_audio_bytes == at
    assert cut[0].played_agent_audio[at:] == b"\x7f" * (N - at)  # silent from the onset on
    # usage: one record per response, in the tick that completed it, adding up to the server's
    dones = [e for e in srv.sent if e["type"] == "response.done"]
    assert [u["response_id"] for u in adapter.usage] == [d["response"]["id"] for d in dones]
    assert sum(u["output_tokens"] for u in adapter.usage) == sum(
        d["response"]["usage"]["output_tokens"] for d in dones) > 0
    assert sum(len(t.usage_records) for t in ticks) == len(adapter.usage) == 2


def test_the_adapter_round_trips_a_tool_call_with_an_error():
    example = load_example()
    tool = rtedge.FunctionTool(name="get_order_status", parameters={
        "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]})
    with RealtimeServer(realtime=False, seed=32, reply_text="I could not find it.",
                        tool_arguments='{"order_id": "W42"}') as srv:
        adapter = example.TickAdapter(url=srv.url, sync="barrier")
        adapter.connect("You look orders up.", tools=[tool])
        audio = ulaw_speech("Where is order W42?").tobytes() + b"\x7f" * 8000
        ticks = [adapter.run_tick(audio)] + [adapter.run_tick(b"") for _ in range(25)]
        call = next(c for t in ticks for c in t.tool_calls)
        assert call.arguments == {"order_id": "W42"} and call.raw_arguments == '{"order_id": "W42"}'
        adapter.send_tool_result(call.call_id, "no such order", is_error=True)
        ticks += [adapter.run_tick(b"") for _ in range(20)]
        adapter.disconnect()
    output = next(e for e in srv.received if e["type"] == "conversation.item.create")["item"]
    assert output["call_id"] == call.call_id and json.loads(output["output"]) == {"error": "no such order"}
    assert "".join(t.transcript for t in ticks) == "I could not find it."


def test_the_example_runs_as_a_script():
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--ticks", "30"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "2 responses" in proc.stdout and "tool get_order_status" in proc.stdout
    assert "closed: closed by the caller" in proc.stdout


@pytest.mark.parametrize("provider", ["openai", "xai", "qwen", "azure"])
def test_the_adapter_speaks_every_dialect_of_the_local_server(provider):
    example = load_example()
    with RealtimeServer(realtime=False, seed=33, dialect=provider, reply_text="Okay, noted.") as srv:
        adapter = example.TickAdapter(provider=provider, url=srv.url, sync="barrier", api_key="test-key",
                                      model="my-deployment" if provider == "azure" else None)
        adapter.connect("Be brief.")
        ticks = [adapter.run_tick(ulaw_speech("Hello there, how are you?").tobytes())]
        ticks += [adapter.run_tick(b"") for _ in range(25)]
        adapter.disconnect()
    per_tick = 4 * N if provider == "qwen" else N  # DashScope takes 16 kHz PCM: the codec converts
    assert all(len(t.played_agent_audio) == N for t in ticks) and len(wire_input(srv)) == per_tick * 26
    assert "".join(t.transcript for t in ticks) == "Okay, noted."
    dones = [e for e in srv.sent if e["type"] == "response.done"]
    assert len(adapter.usage) == len(dones) == 1 and adapter.usage[0]["output_tokens"] > 0

