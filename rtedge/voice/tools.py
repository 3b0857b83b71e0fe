"""Function calling: tools declared from Python functions, run when the model calls them.

Declaring
---------
:func:`tool` (``@rtedge.tool``) and :meth:`Tool.from_function` build a :class:`Tool` from a
function's signature: the JSON schema comes from its type hints (``str``, ``int``, ``float``,
``bool``, ``Literal[...]``, ``Enum`` subclasses, ``list[...]``/``tuple[X, ...]``,
``dict[str, X]``, ``Optional[...]``, ``Annotated[X, "description"]``), parameters with a
default or an ``Optional`` type are not required, the docstring's first paragraph describes
the tool and its Google-style ``Args:`` lines describe the parameters.  :meth:`Tool.from_schema`
takes an explicit JSON schema instead.  A :class:`Tool` *is* a
:class:`~rtedge.protocol.config.FunctionTool`, so it goes straight into
``SessionConfig(tools=[...])``, and it stays callable like the function it wraps::

    @rtedge.tool
    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
        \"\"\"Current weather for a city.

        Args:
            city: the city name, e.g. "Oslo".
            unit: temperature unit.
        \"\"\"
        return {"city": city, "temperature": 12, "unit": unit}

Running
-------
:class:`ToolRunner` answers the model's calls on a client::

    with rtedge.connect("openai") as client, ToolRunner(client, [get_weather]):
        client.send_text("How warm is it in Oslo?")

It puts its tools in the session (``session.update``, confirmed), listens for
``response.function_call_arguments.done`` and ``response.done`` (its callbacks only queue
them, so the dispatcher never waits), and runs each handler on a worker thread named
``rtedge-tools`` (never on the receiver or the dispatcher).  When every call of a response is
answered and that response is done, the outputs go back as ``function_call_output`` items in
call order, followed by ONE ``response.create``.  A handler that raises, an unknown tool name,
arguments that are not a JSON object and a handler slower than ``timeout`` all answer the model
with ``{"error": "..."}`` (and a log line) instead of leaving it waiting.  When a response is
running at that moment, the ``response.create`` waits for its ``response.done``; when the
server still answers ``conversation_already_has_active_response``, it is sent once more after
the next ``response.done``.  A response that ends ``cancelled``/``failed``/``incomplete``
(barge-in, a lost connection) still gets the outputs of its finished calls, so the
conversation holds no dangling call, but no ``response.create``: the user's new turn drives
the next response.

The schema and argument conversions are :mod:`rtedge.voice.tool_schema`'s.  Owns: :class:`Tool`,
:func:`tool` and :class:`ToolRunner` with its threads.  Must not: run a handler on the receiver or the
dispatcher thread.
"""

from __future__ import annotations

import collections
import inspect
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

from .tool_schema import _convert, error_output, output_text, parse_docstring, schema_from_function
from ..errors import ConfigError, ConnectionClosed, LocalProtocolError
from ..protocol import events as ev
from ..protocol import items
from ..protocol._state import ResponseState
from ..protocol.config import FunctionTool

if TYPE_CHECKING:
    from ..transport.client import Client

log = logging.getLogger("rtedge.voice.tools")

__all__ = ["Tool", "ToolCallRecord", "ToolRunner", "parse_docstring", "schema_from_function", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

#: OpenAI's rule for function names (also fine for xAI and DashScope).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# ============================================================================================ tools


@attrs.frozen(kw_only=True)
class Tool(FunctionTool):
    """A function the model may call, with the Python callable that answers it.

    A :class:`~rtedge.protocol.config.FunctionTool` (so it goes into ``SessionConfig(tools=...)``
    as is) and callable like the function it wraps.

    Attributes:
        name: the function name the model uses (``[A-Za-z0-9_-]{1,64}``).
        description: what it does, for the model.
        parameters: the JSON schema of its arguments (an object schema).
        handler: called with the arguments as keyword arguments; its return value becomes the output
            (a ``str`` as is, anything else as JSON).
    """

    handler: Callable[..., Any] | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"tool name must match [A-Za-z0-9_-]{{1,64}}, got {self.name!r}")
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise ConfigError(f"tool {self.name!r}: parameters must be a JSON schema object "
                              "({'type': 'object', 'properties': {...}})")

    @classmethod
    def from_function(cls, fn: Callable[..., Any], name: str | None = None,
                      description: str | None = None) -> Tool:
        """A tool for ``fn``: schema from its type hints, description from its docstring."""
        if isinstance(fn, Tool):
            return attrs.evolve(fn, name=name or fn.name,
                                description=fn.description if description is None else description)
        if not callable(fn):
            raise ConfigError(f"a tool needs a callable, got {type(fn).__name__}")
        doc, parameters = schema_from_function(fn)
        fn_name = name or str(getattr(fn, "__name__", ""))
        return cls(name=fn_name, description=doc if description is None else description,
                   parameters=parameters, handler=fn)

    @classmethod
    def from_schema(cls, name: str, parameters: Mapping[str, Any], handler: Callable[..., Any] | None = None,
                    description: str = "") -> Tool:
        """A tool with an explicit JSON schema (``handler`` gets the arguments as keyword arguments)."""
        return cls(name=name, description=description, parameters=dict(parameters), handler=handler)

    @property
    def function_tool(self) -> FunctionTool:
        """The plain declaration, without the handler."""
        return FunctionTool(name=self.name, description=self.description, parameters=self.parameters)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.handler is None:
            raise TypeError(f"tool {self.name!r} has no handler")
        return self.handler(*args, **kwargs)

    def invoke(self, arguments: Mapping[str, Any]) -> str:
        """Call the handler with ``arguments`` (Enum-typed ones converted) and return the output text.

        Raises whatever the handler raises (the runner turns it into an error output).
        """
        if self.handler is None:
            raise TypeError(f"tool {self.name!r} has no handler")
        return output_text(self.handler(**_convert(self.handler, arguments)))


@overload
def tool(fn: F, /) -> Tool: ...


@overload
def tool(*, name: str | None = None, description: str | None = None,
         parameters: Mapping[str, Any] | None = None) -> Callable[[F], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None, description: str | None = None,
         parameters: Mapping[str, Any] | None = None) -> Tool | Callable[[F], Tool]:
    """Decorator: ``@tool`` or ``@tool(name=..., description=..., parameters=...)`` makes a :class:`Tool`.

    With ``parameters`` the schema is taken as given instead of built from the type hints.
    """
    def make(f: Callable[..., Any]) -> Tool:
        if parameters is not None:
            doc, _ = parse_docstring(inspect.getdoc(f))
            return Tool.from_schema(name or str(getattr(f, "__name__", "")), parameters, f,
                                    doc if description is None else description)
        return Tool.from_function(f, name=name, description=description)

    if fn is not None:
        return make(fn)
    return make


# ============================================================================================ runner


@attrs.frozen(kw_only=True)
class ToolCallRecord:
    """One call the runner answered.

    Attributes:
        call_id: the model's call id.
        name: the tool name the model asked for.
        arguments: the arguments JSON as the model sent it.
        output: the output sent back.
        error: True when the output is an error (raised, unknown tool, bad arguments, timeout).
        seconds: how long the handler ran (0 when it did not run).
        thread: the name of the thread the handler ran on ("" when it did not run).
        response_id: the response that made the call.
    """

    call_id: str
    name: str
    arguments: str
    output: str
    error: bool
    seconds: float
    thread: str
    response_id: str


@attrs.define(eq=False)
class _Call:
    call_id: str
    name: str
    arguments: str
    response_id: str
    output: str | None = None
    error: bool = False
    deadline: float | None = None
    started: float = 0.0
    seconds: float = 0.0
    thread: str = ""


@attrs.define(eq=False)
class _Batch:
    """The calls of one response."""

    response_id: str
    calls: list[_Call] = attrs.Factory(list)
    done: bool = False
    status: str = ""
    flushed: bool = False


_STOP = object()
_EVENT_TYPES = ("response.function_call_arguments.done", "response.done", "error", "rtedge.gave_up")
_ACTIVE_RESPONSE = "conversation_already_has_active_response"
_SEEN_MEMORY = 512


class ToolRunner:
    """Answer the model's function calls on ``client`` with ``tools``.

    Args:
        client: a connected :class:`rtedge.Client` whose dialect supports tools.
        tools: :class:`Tool` values or plain functions (made into tools with :meth:`Tool.from_function`).
        max_workers: handler threads (``rtedge-tools``, then ``rtedge-tools-2``...); the calls of a
            response run in parallel up to this many.
        timeout: seconds a handler may run before the model gets an error output (the handler
            itself cannot be stopped: its thread stays busy until it returns); None: no limit.
        update_session: make these tools the session's tools now (``session.update``, waiting up
            to ``session_timeout`` for ``session.updated``; tools declared before are replaced, and
            a reconnect re-sends them); False when the session already has them.
        session_timeout: seconds to wait for that confirmation.
        respond: send ``response.create`` after the outputs (False: the caller decides when).

    Raises:
        ConfigError: the dialect has no function calling, a tool has no handler, or two share a name.
        ServerError, DeadlineExceeded: the session update was rejected or not confirmed in time.

    Attributes:
        tools: the tools by name.
        history: the most recently answered calls (:class:`ToolCallRecord`, at most 100), oldest first.

    The bookkeeping runs on one more thread, ``rtedge-tools-control``, which also sends the
    outputs.  The runner stops on :meth:`close` (or leaving a ``with`` block), and by itself
    within :attr:`POLL_S` seconds once the client is closed.
    """

    #: how often the control thread checks whether the client was closed, in seconds
    POLL_S = 0.25

    def __init__(self, client: Client, tools: Iterable[Tool | Callable[..., Any]], *, max_workers: int = 1,
                 timeout: float | None = 30.0, update_session: bool = True, session_timeout: float = 10.0,
                 respond: bool = True) -> None:
        if "tools" not in client.dialect.capabilities:
            raise ConfigError(f"the {client.dialect.name} dialect has no function calling")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError(f"max_workers must be an int >= 1, got {max_workers!r}")
        if timeout is not None and not timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        self.tools: dict[str, Tool] = {}
        for item in tools:
            t = item if isinstance(item, Tool) else Tool.from_function(item)
            if t.handler is None:
                raise ConfigError(f"tool {t.name!r} has no handler to run")
            if t.name in self.tools:
                raise ConfigError(f"two tools are named {t.name!r}")
            self.tools[t.name] = t
        self.client = client
        self.timeout = timeout
        self.respond = respond
        self.history: collections.deque[ToolCallRecord] = collections.deque(maxlen=100)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # control-thread state
        self._batches: dict[str, _Batch] = {}
        self._running: dict[str, _Call] = {}  # calls whose handler was started and has not answered
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._create_id: str | None = None  # event_id of our last response.create
        self._create_is_retry = False
        self._create_waiting: str | None = None  # "deferred" or "retry": send at the next response.done
        # shared with wait_idle()
        self._cond = threading.Condition()
        self._queued = 0  # events queued by the dispatcher, not yet handled
        self._settled = True  # no open batch and no response.create waiting
        self._closed = False
        if update_session:
            declared = [t.function_tool for t in self.tools.values()]
            client.update_session(tools=declared, timeout=session_timeout)
        self._callback = self._on_event  # one bound method, so that off() finds it
        names = ["rtedge-tools", *(f"rtedge-tools-{i}" for i in range(2, max_workers + 1))]
        self._workers = [threading.Thread(target=self._work, name=n, daemon=True) for n in names]
        self._control = threading.Thread(target=self._run, name="rtedge-tools-control", daemon=True)
        for thread in (*self._workers, self._control):
            thread.start()
        for kind in _EVENT_TYPES:
            client.on(kind, self._callback)

    def __repr__(self) -> str:
        return f"<rtedge.ToolRunner {sorted(self.tools)} {'closed' if self._closed else 'running'}>"

    def __enter__(self) -> ToolRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ public
    def close(self, timeout: float = 5.0) -> None:
        """Stop listening and join the runner's threads (bounded by ``timeout``; idempotent).

        Calls still running are abandoned: their outputs are not sent.  A handler that does not
        return in time leaves its (daemon) thread behind, with a warning.
        """
        deadline = time.monotonic() + timeout
        if not self._closed:
            self._closed = True
            self._unsubscribe()
            self._inbox.put(_STOP)
        me = threading.current_thread()
        threads = [t for t in (self._control, *self._workers) if t is not me]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            log.warning("tool threads still running after close(%.1f s): %s (a handler may be blocking)",
                        timeout, stuck)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the runner stopped with its client."""
        return self._closed

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the events the dispatcher has handed to the runner are handled, no call is
        running, and no output or ``response.create`` waits to be sent (those are queued for
        sending by then).  True at once when the runner is closed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or (self._queued == 0 and self._settled), timeout)

    # -------------------------------------------------------------------------------------- dispatcher side
    def _on_event(self, event: ev.ServerEvent) -> None:
        """On ``rtedge-dispatch``: hand the event to the control thread; never blocks."""
        with self._cond:
            self._queued += 1
        self._inbox.put(event)

    def _unsubscribe(self) -> None:
        for kind in _EVENT_TYPES:
            self.client.off(kind, self._callback)

    # --------------------------------------------------------------------------------------- control thread
    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._inbox.get(timeout=self._wait_s())
                except queue.Empty:
                    item = None
                if item is _STOP:
                    return
                try:
                    if isinstance(item, ev.ServerEvent):
                        self._handle(item)
                    elif isinstance(item, tuple):
                        self._on_result(*item)
                    self._expire()
                except Exception:  # a bug here must not kill the thread and leave the model waiting
                    log.exception("tool runner failed on %r", item)
                finally:
                    with self._cond:
                        if isinstance(item, ev.ServerEvent):
                            self._queued -= 1
                        self._settled = not self._batches and self._create_waiting is None
                        self._cond.notify_all()
                if self.client.closed or isinstance(item, ev.GaveUp):
                    return
        finally:
            self._closed = True
            self._unsubscribe()
            for _ in self._workers:
                self._jobs.put(_STOP)
            with self._cond:
                self._cond.notify_all()

    def _wait_s(self) -> float:
        now = time.monotonic()
        deadlines = [c.deadline - now for c in self._running.values() if c.deadline is not None]
        return max(0.0, min([self.POLL_S, *deadlines]))

    def _handle(self, event: ev.ServerEvent) -> None:
        if isinstance(event, ev.ResponseFunctionCallArgumentsDone):
            self._start(event.call_id, event.name, event.arguments, event.response_id)
        elif isinstance(event, ev.ResponseDone):
            self._on_done(event)
        elif isinstance(event, ev.Error):
            self._on_error(event)

    def _start(self, call_id: str, name: str, arguments: str, response_id: str) -> None:
        """Register a call and start its handler (or answer it at once with an error)."""
        if not call_id or call_id in self._seen:
            return
        self._seen[call_id] = None
        while len(self._seen) > _SEEN_MEMORY:
            self._seen.popitem(last=False)
        call = _Call(call_id, name, arguments, response_id)
        self._batches.setdefault(response_id, _Batch(response_id)).calls.append(call)
        handler = self.tools.get(name)
        if handler is None:
            log.warning("the model called an unknown tool %r (call %s)", name, call_id)
            problem = f"unknown tool {name!r}; the tools are {sorted(self.tools)}"
            self._answer(call, error_output(problem), True)
            return
        try:
            args = json.loads(arguments or "{}")
            problem = "" if isinstance(args, dict) else f"arguments must be a JSON object, got {arguments!r}"
        except ValueError as exc:
            problem = f"arguments are not valid JSON ({exc}): {arguments!r}"
        if problem:
            log.warning("tool %s (call %s): %s", name, call_id, problem)
            self._answer(call, error_output(problem), True)
            return
        call.started = time.monotonic()
        call.deadline = None if self.timeout is None else call.started + self.timeout
        self._running[call_id] = call
        self._jobs.put((call, handler, args))

    def _on_result(self, call: _Call, output: str, error: bool, seconds: float, thread: str) -> None:
        call.seconds, call.thread = seconds, thread
        if self._running.pop(call.call_id, None) is None:  # timed out: the model already has an error
            log.info("tool %s (call %s) returned after its timeout; result dropped", call.name, call.call_id)
            return
        self._answer(call, output, error)

    def _expire(self) -> None:
        now = time.monotonic()
        for call in [c for c in self._running.values() if c.deadline is not None and now >= c.deadline]:
            del self._running[call.call_id]
            call.seconds = now - call.started
            log.warning("tool %s (call %s) did not return within %g s", call.name, call.call_id, self.timeout)
            self._answer(call, error_output(f"tool {call.name!r} timed out after {self.timeout:g} s"), True)

    def _answer(self, call: _Call, output: str, error: bool) -> None:
        call.output, call.error = output, error
        self.history.append(ToolCallRecord(
            call_id=call.call_id, name=call.name, arguments=call.arguments, output=output, error=error,
            seconds=call.seconds, thread=call.thread, response_id=call.response_id))
        batch = self._batches.get(call.response_id)
        if batch is not None and self._flush(batch):
            self._request_create(retry=False)

    def _on_done(self, event: ev.ResponseDone) -> None:
        rid = event.response_id
        output = event.response.get("output")
        for item in output if isinstance(output, list) else ():
            # a dialect that skips response.function_call_arguments.done still lists the call here
            if (isinstance(item, Mapping) and item.get("type") == "function_call"
                    and item.get("status", "completed") == "completed"
                    and isinstance(item.get("call_id"), str)):
                self._start(item["call_id"], str(item.get("name", "")), str(item.get("arguments", "")), rid)
        batch = self._batches.get(rid)
        if batch is None and rid and "" in self._batches:
            batch = self._batches.pop("")  # calls that came without a response_id belong to this response
            batch.response_id = rid
            self._batches[rid] = batch
        wanted = False
        if batch is not None:
            batch.done, batch.status = True, event.status
            wanted = self._flush(batch)
        waiting, self._create_waiting = self._create_waiting, None
        if waiting is not None or wanted:
            self._request_create(retry=waiting == "retry")

    def _on_error(self, event: ev.Error) -> None:
        err = event.error
        if err.code != _ACTIVE_RESPONSE or err.event_id is None or err.event_id != self._create_id:
            return
        if self._create_is_retry:
            log.warning("response.create after tool outputs refused again (%s); giving up", err.code)
            return
        log.info("response.create after tool outputs refused (%s); retrying after the next response.done",
                 err.code)
        self._create_waiting = "retry"

    def _flush(self, batch: _Batch) -> bool:
        """Send a finished response's outputs in call order; True when a response.create should follow."""
        if batch.flushed or not batch.done or any(c.output is None for c in batch.calls):
            return False
        batch.flushed = True
        self._batches.pop(batch.response_id, None)
        try:
            for call in batch.calls:
                self.client.send(ev.ConversationItemCreate(
                    item=items.function_call_output(call.call_id, call.output or "")))
        except (ConnectionClosed, LocalProtocolError) as exc:
            log.warning("could not send the tool outputs: %s", exc)
            return False
        if batch.status != "completed":
            log.info("response %s ended %s: tool outputs sent, no response.create",
                     batch.response_id, batch.status)
            return False
        return self.respond and bool(batch.calls)

    def _request_create(self, retry: bool) -> None:
        """Send ``response.create`` now, or at the next ``response.done`` when a response is running."""
        if self.client.snapshot.response is not ResponseState.IDLE:
            self._create_waiting = "retry" if retry or self._create_waiting == "retry" else "deferred"
            return
        try:
            self._create_id = self.client.create_response()
        except (ConnectionClosed, LocalProtocolError) as exc:
            log.warning("could not send response.create after the tool outputs: %s", exc)
            return
        self._create_is_retry = retry

    # ------------------------------------------------------------------------------------------ workers
    def _work(self) -> None:
        name = threading.current_thread().name
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            call, handler, args = job
            t0 = time.monotonic()
            try:
                output, error = handler.invoke(args), False
            except Exception as exc:
                log.exception("tool %s (call %s) raised", call.name, call.call_id)
                output, error = error_output(f"{type(exc).__name__}: {exc}"), True
            self._inbox.put((call, output, error, time.monotonic() - t0, name))
