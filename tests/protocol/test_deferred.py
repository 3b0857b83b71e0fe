"""The written guarantees of rtedge.protocol._deferred: one class per name whichever thread asks first,
bases made before subclasses, and the shared methods behaving as attrs writes them for a frozen class."""

from __future__ import annotations

import threading

import attrs

from rtedge.protocol._deferred import Deferred, EventMethods


def _module() -> tuple[dict, Deferred]:
    namespace: dict = {}
    lazy = Deferred(namespace)

    class Base(EventMethods):
        pass

    @lazy.keep(kw_only=True)
    class Ping(Base):
        n: int
        note: str = attrs.field(default="", eq=False, repr=False)

    namespace.update(Base=attrs.frozen(kw_only=True, eq=False, repr=False)(Base), Ping=Ping)
    lazy.unbind()
    return namespace, lazy


def test_threads_asking_at_once_get_one_class():
    namespace, lazy = _module()
    start, got = threading.Barrier(8), []

    def ask() -> None:
        start.wait(5)
        got.append(lazy.make("Ping"))

    threads = [threading.Thread(target=ask, name=f"test-make-{i}") for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(got) == 8 and len({id(c) for c in got}) == 1 and namespace["Ping"] is got[0]
    assert "Ping" not in lazy.templates or namespace["Ping"] is not lazy.templates["Ping"]


def test_shared_methods_compare_hash_and_print_like_attrs():
    _, lazy = _module()
    Ping = lazy.make("Ping")
    a, b, c = Ping(n=1, note="x"), Ping(n=1, note="y"), Ping(n=2)
    assert a == b and hash(a) == hash(b) and a != c  # eq=False fields are ignored
    assert repr(a) == "Ping(n=1)"
    assert (a == object()) is False and a.__eq__(object()) is NotImplemented
