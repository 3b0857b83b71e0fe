"""Function calling: schemas from Python functions, and ToolRunner rounds against the local GA server.

Expected schemas are written by hand from the JSON-schema meaning of each type hint.  Rounds run
against ``rtedge.testing.RealtimeServer``: single calls are the server's own (it calls a configured
tool); several calls in one response, cancelled responses and the active-response race are
scripted with ``send_event`` around the server's real responses.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import threading
import types
from typing import Annotated, Any, Literal, Optional

import pytest

import rtedge
from rtedge.errors import ConfigError
from rtedge.protocol import Session, SessionConfig
from rtedge.protocol import events as ev
from rtedge.protocol._state import ResponseState
from rtedge.protocol.config import FunctionTool
from rtedge.protocol.dialects.openai import OpenAIDialect
from rtedge.testing import RealtimeServer
from rtedge.voice.tools import Tool, ToolRunner, parse_docstring, schema_from_function, tool

from ..conftest import wait_until

pytestmark = pytest.mark.usefixtures("no_thread_leak", "no_tool_thread_leak")


def tool_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rtedge-tools")]


@pytest.fixture
def no_tool_thread_leak():
    before = set(tool_threads())
    yield
    assert wait_until(lambda: set(tool_threads()) <= before, timeout=5.0), tool_threads()




# ============================================================================================ schemas


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def forecast(city: str, days: int, unit: Unit = Unit.CELSIUS, hourly: bool = False, *,
             mode: Literal["fast", "exact"] = "fast", ratio: float = 0.5, tags: list[str] | None = None,
             level: Optional[Level] = None, pairs: tuple[int, ...] = (),
             extra: dict[str, float] | None = None, note: Annotated[str, "a note for the forecaster"] = "",
             anything: Any = None) -> dict[str, Any]:
    """Weather forecast for a city.

    Uses the national service; falls back to a cache.

    Args:
        city: the city name,
            for example "Oslo".
        days (int): how many days ahead.
        unit: temperature unit.
        note: ignored (the Annotated text wins).

    Returns:
        the forecast.
    """
    return {"city": city, "days": days, "unit": unit, "level": level}


FORECAST_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": 'the city name, for example "Oslo".'},
        "days": {"type": "integer", "description": "how many days ahead."},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "temperature unit."},
        "hourly": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["fast", "exact"]},
        "ratio": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "level": {"type": "integer", "enum": [1, 2]},
        "pairs": {"type": "array", "items": {"type": "integer"}},
        "extra": {"type": "object", "additionalProperties": {"type": "number"}},
        "note": {"type": "string", "description": "a note for the forecaster"},
        "anything": {},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}


def test_schema_from_type_hints_golden():
    t = Tool.from_function(forecast)
    assert t.name == "forecast"
    assert t.description == "Weather forecast for a city."
    assert t.parameters == FORECAST_SCHEMA
    assert json.loads(json.dumps(t.parameters)) == FORECAST_SCHEMA  # plain JSON


def test_optional_without_default_is_not_required_and_gets_none():
    def lookup(code: str, region: str | None) -> str:
        return f"{code}/{region}"

    t = Tool.from_function(lookup, name="lookup_code", description="Look a code up.")
    assert (t.name, t.description) == ("lookup_code", "Look a code up.")
    assert t.parameters["required"] == ["code"]
    assert t.parameters["properties"]["region"] == {"type": "string"}
    assert t.invoke({"code": "A"}) == "A/None"


def test_kwargs_leave_the_schema_open_and_unions_become_any_of():
    def f(x: int | str, **rest: Any) -> None:
        """No args section."""

    _, params = schema_from_function(f)
    any_of = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert params == {"type": "object", "properties": {"x": any_of}, "required": ["x"]}


def test_decorator_forms_and_tool_is_a_function_tool():
    @tool
    def ping() -> str:
        """Answer pong."""
        return "pong"

    @tool(name="set_light", description="Switch a light.")
    def switch(room: str, on: bool) -> dict[str, Any]:
        return {"room": room, "on": on}

    explicit = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

    @tool(parameters=explicit)
    def search(**kwargs: Any) -> list[str]:
        """Search the manual.

        Args:
            q: the query.
        """
        return [kwargs["q"]]

    assert isinstance(ping, Tool) and isinstance(ping, FunctionTool)
    assert ping() == "pong"  # still callable like the function
    assert ping.parameters == {"type": "object", "properties": {}, "required": [],
                               "additionalProperties": False}
    assert (switch.name, switch.description) == ("set_light", "Switch a light.")
    assert switch.invoke({"room": "hall", "on": True}) == '{"room": "hall", "on": true}'
    assert search.parameters == explicit and search.description == "Search the manual."
    assert search.invoke({"q": "reset"}) == '["reset"]'
    assert ping.function_tool == FunctionTool(name="ping", description="Answer pong.",
                                              parameters=ping.parameters)
    # straight into a session config, in GA's flat tool shape
    wire = json.loads(Session("openai").send(ev.SessionUpdate(session=SessionConfig(tools=[switch]))))
    assert wire["session"]["tools"] == [{"type": "function", "name": "set_light",
                                         "description": "Switch a light.", "parameters": switch.parameters}]


def test_from_schema_and_invoke_conversions():
    @dataclasses.dataclass
    class Reading:
        unit: Unit
        value: float

    def read(unit: Unit, sensors: set[str] | None = None) -> Reading:
        assert isinstance(unit, Unit)  # converted from the JSON string
        return Reading(unit, 21.5)

    t = Tool.from_schema("read", {"type": "object", "properties": {}}, read, "Read the sensor.")
    assert t.invoke({"unit": "fahrenheit"}) == '{"unit": "fahrenheit", "value": 21.5}'
    assert Tool.from_function(lambda: "x", name="lam").invoke({}) == "x"


@pytest.mark.parametrize("bad", [
    lambda *args: None,  # not callable by name
    eval("lambda a, /: None"),  # positional-only
])
def test_unnameable_parameters_are_refused(bad):
    with pytest.raises(ConfigError, match="by name"):
        Tool.from_function(bad, name="bad")


class Point:
    pass


def test_unsupported_types_and_names_are_refused():
    class Local:
        pass

    def f(p: Point) -> None:
        pass

    def g(p: Local) -> None:  # a string annotation (future import) naming a local class
        pass

    with pytest.raises(ConfigError, match="parameter 'p'.*not supported"):
        Tool.from_function(f)
    with pytest.raises(ConfigError, match="cannot resolve the type hints.*Local"):
        Tool.from_function(g)
    with pytest.raises(ConfigError, match="tool name"):
        Tool.from_schema("bad name!", {"type": "object"})
    with pytest.raises(ConfigError, match="JSON schema object"):
        Tool.from_schema("ok", {"type": "string"})


def test_docstring_parsing():
    doc = """Summary line
    continues here.

    Body.

    Args:
        a (int): first,
            wrapped.
        *rest: more.
        b: second.

    Raises:
        ValueError: never.
    """
    assert parse_docstring(doc) == ("Summary line continues here.",
                                    {"a": "first, wrapped.", "rest": "more.", "b": "second."})
    assert parse_docstring(None) == ("", {})


# ============================================================================================ rounds

WEATHER_OUTPUT = {"city": "Oslo", "sky": "sunny", "celsius": 18}


def _client_events(srv: RealtimeServer, *kinds: str) -> list[dict[str, Any]]:
    return [e for e in srv.received if e["type"] in kinds]


def _validate_all(srv: RealtimeServer, validate) -> None:
    for event in _client_events(srv, "session.update", "conversation.item.create", "response.create"):
        validate(event)


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_tool_round_against_the_local_server(provider, validate_client_event):
    ran_on: list[str] = []

    @tool
    def get_weather(city: str) -> dict[str, Any]:
        """Weather for a city."""
        ran_on.append(threading.current_thread().name)
        return {**WEATHER_OUTPUT, "city": city}

    reply = "Sunny, 18 degrees."
    with RealtimeServer(realtime=False, tool_arguments='{"city": "Oslo"}', reply_text=reply) as srv:
        with rtedge.connect(provider, url=srv.url, model="gpt-realtime",
                            session=SessionConfig(output_modalities=("text",))) as c:
            with ToolRunner(c, [get_weather]) as runner:
                assert srv.sessions[-1]["tools"][0]["name"] == "get_weather"  # confirmed in the session
                c.send_text("Weather in Oslo?")
                call = c.wait_for("response.function_call_arguments.done", timeout=10)
                first = c.wait_for("response.done", timeout=10)
                final = c.wait_for("response.done", timeout=10)
                assert runner.wait_idle(timeout=10)
            assert ran_on == ["rtedge-tools"]
            assert first.response["output"][0]["type"] == "function_call"
            assert final.status == "completed" and final.response["output"][0]["type"] == "message"
            assert c.state.output_items[final.response["output"][0]["id"]].text[0] == reply
            record = runner.history[-1]
            assert (record.call_id, record.name, record.error, record.thread) == (
                call.call_id, "get_weather", False, "rtedge-tools")
        kinds = [e["type"] for e in srv.received]
        assert kinds == ["session.update", "session.update", "conversation.item.create", "response.create",
                         "conversation.item.create", "response.create"]
        output = srv.received[4]["item"]
        assert output == {"type": "function_call_output", "call_id": call.call_id,
                          "output": json.dumps(WEATHER_OUTPUT)}
        assert not [e for e in srv.sent if e["type"] == "error"]
        _validate_all(srv, validate_client_event)
    assert runner.closed


def test_tool_round_with_the_qwen_dialect():
    @tool
    def get_weather(city: str) -> dict[str, Any]:
        """Weather for a city."""
        return {**WEATHER_OUTPUT, "city": city}

    args = '{"city": "Oslo"}'
    with RealtimeServer(dialect="qwen", realtime=False, tool_arguments=args, reply_text="Sunny.") as srv:
        with rtedge.connect("qwen", url=srv.url, model="qwen3.5-omni-flash-realtime",
                            session=SessionConfig(output_modalities=("text",))) as c:
            with ToolRunner(c, [get_weather]) as runner:
                assert srv.sessions[-1]["tools"][0]["function"]["name"] == "get_weather"  # nested shape
                c.send_text("Weather in Oslo?")
                call = c.wait_for("response.function_call_arguments.done", timeout=10)
                c.wait_for("response.done", timeout=10)
                final = c.wait_for("response.done", timeout=10)
                assert runner.wait_idle(timeout=10)
            assert final.status == "completed" and final.response["output"][0]["type"] == "message"
            assert runner.history[-1].thread == "rtedge-tools"
        assert _outputs(srv) == [{"type": "function_call_output", "call_id": call.call_id,
                                  "output": json.dumps(WEATHER_OUTPUT)}]
        assert [e["type"] for e in srv.received] == [
            "session.update", "session.update", "conversation.item.create", "response.create",
            "conversation.item.create", "response.create", "session.finish"]
    # a model that never calls tools has no "tools" capability: the runner says so up front
    with RealtimeServer(dialect="qwen", realtime=False) as srv:
        with rtedge.connect("qwen", url=srv.url, model="qwen3-omni-flash-realtime") as c:
            with pytest.raises(ConfigError, match="no function calling"):
                ToolRunner(c, [get_weather])


def _scripted_calls(srv: RealtimeServer, response_id: str, calls: list[tuple[str, str, str]],
                    status: str = "completed") -> None:
    """Inject one response holding several function calls, the way the GA server streams them."""
    srv.send_event({"type": "response.created", "response": {"id": response_id, "object": "realtime.response",
                                                             "status": "in_progress", "output": []}})
    items = []
    for index, (call_id, name, arguments) in enumerate(calls):
        item = {"id": f"item_{call_id}", "type": "function_call", "status": "in_progress", "name": name,
                "call_id": call_id, "arguments": ""}
        srv.send_event({"type": "response.output_item.added", "response_id": response_id,
                        "output_index": index, "item": item})
        srv.send_event({"type": "response.function_call_arguments.done", "response_id": response_id,
                        "item_id": item["id"], "output_index": index, "call_id": call_id, "name": name,
                        "arguments": arguments})
        item = {**item, "status": "completed", "arguments": arguments}
        srv.send_event({"type": "response.output_item.done", "response_id": response_id,
                        "output_index": index, "item": item})
        items.append(item)
    srv.send_event({"type": "response.done", "response": {"id": response_id, "object": "realtime.response",
                                                          "status": status, "output": items}})


def _outputs(srv: RealtimeServer) -> list[dict[str, Any]]:
    return [e["item"] for e in _client_events(srv, "conversation.item.create")
            if e["item"]["type"] == "function_call_output"]


def test_two_calls_in_one_response_run_in_parallel_then_one_response_create(validate_client_event):
    both_running = threading.Barrier(2, timeout=5)

    def lights(room: str, on: bool) -> str:
        both_running.wait()  # only passes when the two handlers run at the same time
        return f"{room} {'on' if on else 'off'}"

    def blinds(room: str, percent: int) -> dict[str, Any]:
        both_running.wait()
        return {"room": room, "percent": percent}

    with RealtimeServer(realtime=False, auto_tool_calls=False, reply_text="Done.") as srv:
        with rtedge.connect(url=srv.url) as c, ToolRunner(c, [lights, blinds], max_workers=2) as runner:
            _scripted_calls(srv, "resp_two", [("call_a", "lights", '{"room": "hall", "on": true}'),
                                              ("call_b", "blinds", '{"room": "hall", "percent": 40}')])
            srv.wait_for_received("response.create", timeout=10)
            done = c.wait_for("response.done", timeout=10)  # the scripted one
            assert done.response_id == "resp_two"
            final = c.wait_for("response.done", timeout=10)
            assert final.status == "completed" and final.response["output"][0]["type"] == "message"
            assert runner.wait_idle(timeout=10)
            assert {r.thread for r in runner.history} == {"rtedge-tools", "rtedge-tools-2"}
        # all outputs, in call order, then exactly one response.create
        kinds = [e["type"] for e in srv.received][1:]
        assert kinds == ["conversation.item.create", "conversation.item.create", "response.create"]
        assert _outputs(srv) == [
            {"type": "function_call_output", "call_id": "call_a", "output": "hall on"},
            {"type": "function_call_output", "call_id": "call_b",
             "output": '{"room": "hall", "percent": 40}'}]
        _validate_all(srv, validate_client_event)


def test_raising_handler_unknown_tool_and_bad_arguments_answer_with_errors(caplog):
    def explode(reason: str) -> str:
        raise RuntimeError(f"boom: {reason}")

    def fine() -> str:
        return "ok"

    caplog.set_level(logging.INFO, logger="rtedge.voice.tools")
    with RealtimeServer(realtime=False, auto_tool_calls=False) as srv:
        with rtedge.connect(url=srv.url) as c, ToolRunner(c, [explode, fine]) as runner:
            _scripted_calls(srv, "resp_bad", [("c1", "explode", '{"reason": "fuse"}'),
                                              ("c2", "no_such_tool", "{}"),
                                              ("c3", "fine", "{not json"),
                                              ("c4", "fine", "[1, 2]"),
                                              ("c5", "fine", "")])
            srv.wait_for_received("response.create", timeout=10)
            assert runner.wait_idle(timeout=10)
        outputs = {o["call_id"]: o["output"] for o in _outputs(srv)}
        assert list(outputs) == ["c1", "c2", "c3", "c4", "c5"]
        assert json.loads(outputs["c1"]) == {"error": "RuntimeError: boom: fuse"}
        assert json.loads(outputs["c2"])["error"].startswith("unknown tool 'no_such_tool'")
        assert "not valid JSON" in json.loads(outputs["c3"])["error"]
        assert "must be a JSON object" in json.loads(outputs["c4"])["error"]
        assert outputs["c5"] == "ok"  # empty arguments are an empty object
        assert sorted(r.call_id for r in runner.history if r.error) == ["c1", "c2", "c3", "c4"]
        assert len(_client_events(srv, "response.create")) == 1
    raised = [r for r in caplog.records if "raised" in r.getMessage()]
    assert raised and raised[0].exc_info is not None  # logged with its traceback
    assert any("unknown tool" in r.getMessage() for r in caplog.records)


def test_server_made_call_to_an_unknown_tool():
    def known(x: int = 0) -> int:
        return x

    with RealtimeServer(realtime=False, tool_name="imaginary", reply_text="Sorry.") as srv:
        with rtedge.connect(url=srv.url) as c, ToolRunner(c, [known]) as runner:
            c.send_text("Do the imaginary thing")
            c.wait_for("response.done", timeout=10)
            assert c.wait_for("response.done", timeout=10).response["output"][0]["type"] == "message"
            assert runner.wait_idle(timeout=10)
        (output,) = _outputs(srv)
        assert "unknown tool 'imaginary'" in json.loads(output["output"])["error"]


def test_slow_handler_times_out_with_an_error_output_and_its_late_result_is_dropped():
    release = threading.Event()

    def slow() -> str:
        release.wait(10)
        return "too late"

    with RealtimeServer(realtime=False, reply_text="It took too long.") as srv:
        with rtedge.connect(url=srv.url) as c, ToolRunner(c, [slow], timeout=0.3) as runner:
            c.send_text("Do the slow thing")
            srv.wait_for_received("response.create", nth=2, timeout=10)
            (output,) = _outputs(srv)
            assert json.loads(output["output"]) == {"error": "tool 'slow' timed out after 0.3 s"}
            release.set()
            assert wait_until(lambda: runner.history[-1].error and runner._running == {}, timeout=5)
            assert runner.wait_idle(timeout=10)
            assert len(_outputs(srv)) == 1 and len(runner.history) == 1


def test_active_response_error_is_retried_once_after_the_next_response_done(validate_client_event):
    def get_time() -> str:
        return "12:00"

    # the server holds its own response "other" for 1 s while the scripted call response comes and goes
    with RealtimeServer(realtime=False, auto_tool_calls=False, response_delay=1.0, reply_text="Noon.") as srv:
        with rtedge.connect(url=srv.url) as c, ToolRunner(c, [get_time]) as runner:
            c.create_response()
            other = c.wait_for("response.created", timeout=10)
            _scripted_calls(srv, "resp_call", [("call_t", "get_time", "{}")])
            error = srv.wait_for_sent("error", timeout=10)
            assert error["error"]["code"] == "conversation_already_has_active_response"
            refused = _client_events(srv, "response.create")[1]
            assert error["error"]["event_id"] == refused["event_id"]
            assert c.wait_for("response.done", timeout=10).response_id == "resp_call"
            assert c.wait_for("response.done", timeout=10).response_id == other.response_id
            retried = srv.wait_for_received("response.create", nth=3, timeout=10)
            final = c.wait_for("response.done", timeout=10)
            assert final.status == "completed" and final.response_id != other.response_id
            assert runner.wait_idle(timeout=10)
        assert retried["event_id"] != refused["event_id"]
        assert len([e for e in srv.sent if e["type"] == "error"]) == 1  # the retry was accepted
        assert [e["type"] for e in srv.received][-3:] == ["conversation.item.create", "response.create",
                                                          "response.create"]
        _validate_all(srv, validate_client_event)


def test_response_create_waits_for_a_running_response():
    entered, gate = threading.Event(), threading.Event()

    def lookup(term: str) -> str:
        entered.set()
        gate.wait(10)
        return f"{term}: found"

    with RealtimeServer(realtime=False, response_delay=0.8, reply_text="Found it.") as srv:
        with rtedge.connect(url=srv.url) as c, ToolRunner(c, [lookup]) as runner:
            c.send_text("Look up rtedge")
            assert entered.wait(10)
            srv.auto_tool_calls = False  # the model calls once (the outputs land before "our" reply)
            c.wait_for("response.done", timeout=10)  # the function-call response
            c.create_response(tool_choice="none")  # a response of our own, while the handler runs
            assert wait_until(lambda: c.state.response is ResponseState.ACTIVE, timeout=5)
            gate.set()
            assert runner.wait_idle(timeout=10)
            c.wait_for("response.done", timeout=10)
            final = c.wait_for("response.done", timeout=10)
            assert final.status == "completed" and final.response["output"][0]["type"] == "message"
        assert not [e for e in srv.sent if e["type"] == "error"]  # never refused: it waited
        kinds = [e["type"] for e in srv.received]
        assert kinds == ["session.update", "conversation.item.create", "response.create", "response.create",
                         "conversation.item.create", "response.create"]
        assert len(runner.history) == 1


def test_cancelled_response_gets_outputs_but_no_response_create():
    def note(text: str) -> str:
        return "noted"

    with RealtimeServer(realtime=False, auto_tool_calls=False) as srv:
        with rtedge.connect(url=srv.url) as c, ToolRunner(c, [note]) as runner:
            _scripted_calls(srv, "resp_cut", [("call_n", "note", '{"text": "hi"}')], status="cancelled")
            srv.wait_for_received("conversation.item.create", timeout=10)
            assert runner.wait_idle(timeout=10)
            # a marker sent after whatever the runner queued: once it arrives, all of that has
            c.send_text("marker", respond=False)
            srv.wait_for_received("conversation.item.create", nth=2, timeout=10)
        assert [o["call_id"] for o in _outputs(srv)] == ["call_n"]
        assert not _client_events(srv, "response.create")


def test_respond_false_leaves_the_response_create_to_the_caller():
    def add(a: int, b: int) -> int:
        return a + b

    with RealtimeServer(realtime=False, auto_tool_calls=False) as srv:
        with rtedge.connect(url=srv.url) as c, ToolRunner(c, [add], respond=False) as runner:
            _scripted_calls(srv, "resp_add", [("call_s", "add", '{"a": 2, "b": 3}')])
            srv.wait_for_received("conversation.item.create", timeout=10)
            assert runner.wait_idle(timeout=10)
            c.send_text("marker", respond=False)
            srv.wait_for_received("conversation.item.create", nth=2, timeout=10)
        assert _outputs(srv) == [{"type": "function_call_output", "call_id": "call_s", "output": "5"}]
        assert not _client_events(srv, "response.create")


def test_runner_stops_with_its_client_and_close_is_idempotent():
    with RealtimeServer(realtime=False) as srv:
        c = rtedge.connect(url=srv.url)
        runner = ToolRunner(c, [Tool.from_function(lambda: "x", name="x")], max_workers=3)
        assert sorted(tool_threads()) == ["rtedge-tools", "rtedge-tools-2", "rtedge-tools-3",
                                          "rtedge-tools-control"]
        c.close()
        assert wait_until(lambda: runner.closed and not tool_threads(), timeout=5)
        runner.close()
        runner.close()
        assert "closed" in repr(runner)


def test_close_from_inside_a_handler():
    holder: dict[str, ToolRunner] = {}
    closed = threading.Event()

    def stop() -> str:
        holder["runner"].close(timeout=2)
        closed.set()
        return "stopping"

    with RealtimeServer(realtime=False) as srv:
        with rtedge.connect(url=srv.url) as c:
            holder["runner"] = ToolRunner(c, [stop])
            c.send_text("stop")
            assert closed.wait(10)
            assert wait_until(lambda: not tool_threads(), timeout=5)


def test_refuses_dialects_without_tools_and_bad_settings():
    class NoTools(OpenAIDialect):
        capabilities = OpenAIDialect.capabilities - {"tools"}

    fake = types.SimpleNamespace(dialect=NoTools())
    with pytest.raises(ConfigError, match="no function calling"):
        ToolRunner(fake, [lambda: None])  # type: ignore[arg-type]
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url) as c:
        with pytest.raises(ConfigError, match="max_workers"):
            ToolRunner(c, [], max_workers=0)
        with pytest.raises(ConfigError, match="timeout"):
            ToolRunner(c, [], timeout=0)
        with pytest.raises(ConfigError, match="two tools"):
            ToolRunner(c, [Tool.from_function(lambda: 1, name="a"), Tool.from_function(lambda: 2, name="a")])
        with pytest.raises(ConfigError, match="no handler"):
            ToolRunner(c, [Tool.from_schema("a", {"type": "object"})])
        assert not tool_threads()  # nothing started for a refused runner


def test_lazy_exports():
    assert rtedge.tool is tool and rtedge.Tool is Tool and rtedge.ToolRunner is ToolRunner
