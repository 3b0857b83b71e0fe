"""The package layout: the library never loads the application, and the old import paths still work, warning."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings

import pytest

from rtedge import _moved

from .conftest import REPO

PACKAGE = REPO / "rtedge"
LIBRARY = ("protocol", "audio", "transport", "voice", "testing")


def _imports(path) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (module level or inside a function), as absolute names."""
    package = list(path.relative_to(REPO).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_no_library_module_imports_the_application():
    """Checked on the source, so an import inside a function or an error path counts too."""
    offenders = []
    for sub in LIBRARY:
        for path in sorted((PACKAGE / sub).rglob("*.py")):
            offenders += [f"{path.relative_to(REPO)}:{line}: {name}" for line, name in _imports(path)
                          if name == "rtedge.app" or name.startswith("rtedge.app.")]
    assert offenders == []


@pytest.mark.parametrize("statement", [
    "import rtedge.protocol",
    "import rtedge.voice",
    # every library module, loaded for real
    "import rtedge.voice.agent, rtedge.voice.tick, rtedge.voice.tools, rtedge.voice.transcriber, "
    "rtedge.voice.wake, rtedge.audio.devices, rtedge.audio.wavio, rtedge.transport.client, rtedge.testing",
])
def test_importing_the_library_loads_no_application_module(statement):
    code = f"import sys; {statement}; print(sorted(m for m in sys.modules if m.startswith('rtedge.app')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_file_list_shows_library_and_application_apart():
    """At the top only the package's entry points remain; everything else lives in a subpackage."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "_moved.py", "_version.py", "errors.py"]
    for old in _moved.MOVED:
        assert not (REPO / (old.replace(".", "/") + ".py")).exists(), old


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_an_old_import_path_warns_and_gives_the_same_module(old):
    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print(w)\nelse:\n    print('no warning')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{old} is deprecated") and _moved.MOVED[old] in out.stdout
    gives = _moved.GATHERED[old][0] if old in _moved.GATHERED else _moved.MOVED[old]
    new = importlib.import_module(gives)
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is new and module.__spec__.name == gives
    assert [w.category for w in caught] == [DeprecationWarning]


def test_an_old_module_split_in_two_still_offers_every_name_it_had():
    """``rtedge.config`` held the settings and ``load_config``; they now live in two modules."""
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    from rtedge.config import load_config\nexcept DeprecationWarning as w:\n    print(w)\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            "import rtedge.config as old, rtedge.app.settings as settings, rtedge.app.settings_load as loading\n"
            "assert old.load_config is loading.load_config and old.Config is settings.Config\n"
            "assert all(getattr(old, name) is not None for name in old.__all__)\n"
            "print(old.load_config(None, {}).provider.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    warning, provider = out.stdout.splitlines()
    assert warning.startswith("rtedge.config is deprecated") and "rtedge.app.settings_load" in warning
    assert provider  # a Config with the defaults was loaded


def test_the_readme_s_old_imports_still_run_and_point_at_the_importer(tmp_path):
    script = tmp_path / "old_user.py"
    script.write_text("from rtedge.agent import VoiceAgent\nfrom rtedge.tick import TickSession, TickSettings\n"
                      "from rtedge.tools import ToolRunner, tool\nimport rtedge\n"
                      "assert VoiceAgent is rtedge.VoiceAgent and TickSession is rtedge.TickSession\n"
                      "assert tool is rtedge.tool and ToolRunner is rtedge.ToolRunner\nprint('ran')\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0 and out.stdout == "ran\n", out.stderr
    # shown by default (the warning is attributed to the script, not to importlib)
    assert f"{script}:1: DeprecationWarning: rtedge.agent is deprecated" in out.stderr
    assert f"{script}:2: DeprecationWarning: rtedge.tick is deprecated" in out.stderr


# ------------------------------------------------------------------------------------------ import graph
MODULES = {".".join(p.relative_to(REPO).with_suffix("").parts[:-1] if p.name == "__init__.py"
                    else p.relative_to(REPO).with_suffix("").parts): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(path) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement that runs (``if TYPE_CHECKING:`` blocks left out), with whether it sits in a
    function (run on call) rather than at module or class level (run on import)."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_one(other, in_function)
                continue
            visit_one(child, in_function)

    def visit_one(child: ast.AST, in_function: bool) -> None:
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append((child, in_function))
        visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(path.read_text()), False)
    return found


def _targets(module: str, path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The rtedge modules an import statement loads (a package's ``__init__`` included)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1] if node.level else []
        source = ".".join(base + ([node.module] if node.module else []))
        names = [source] + [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES]
    own = _ancestors(module)
    out = []
    for name in names:
        for target in [name, *_ancestors(name)]:
            if target in MODULES and target != module and target not in own:
                out.append(target)
    return out


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(*, with_function_level: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for node, in_function in _import_nodes(path):
            if with_function_level or not in_function:
                graph[module].update(_targets(module, path, node))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph(with_function_level=False)
    assert "rtedge.protocol.session" in graph["rtedge.transport.client"]  # the graph sees real edges
    assert "rtedge.audio" in graph["rtedge.voice.agent"]  # a package's __init__ runs first


def test_no_import_cycles_at_module_level():
    assert cycles(import_graph(with_function_level=False)) == []


def test_no_function_level_import_hides_a_cycle():
    """Counting the imports inside functions too: an import moved into a function to dodge a cycle fails."""
    assert cycles(import_graph(with_function_level=True)) == []


def function_level_imports() -> list[tuple[str, int, str]]:
    """``(path, line, reason)`` of every import inside a function; the reason is the text after ``# lazy:``
    on its line, or on the comment line right above it or above the run of imports it belongs to ("" if
    none)."""
    found = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        for node, in_function in _import_nodes(path):
            if not in_function:
                continue
            reason = lines[node.lineno - 1].partition("# lazy:")[2].strip()
            above = node.lineno - 2
            while not reason and above >= 0 and lines[above].strip().startswith(("from ", "import ")):
                above -= 1
            if not reason and above >= 0 and lines[above].strip().startswith("# lazy:"):
                reason = lines[above].strip().partition("# lazy:")[2].strip()
            found.append((str(path.relative_to(REPO)), node.lineno, reason))
    return found


def test_every_function_level_import_says_why():
    """Only optional dependencies and start-up cost justify an import inside a function: each says which,
    in a ``# lazy: <reason>`` comment on its line or the line above."""
    found = function_level_imports()
    assert [reason for path, _, reason in found if path == "rtedge/audio/_pyaudio.py"] == [
        "optional dependency (PyAudio): only the PortAudio devices need it"], "the walker reads the reasons"
    assert [f"{path}:{line}" for path, line, reason in found if not reason] == []



# ------------------------------------------------------------------------------------------ size budget
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 60


def test_modules_stay_within_the_size_budget():
    too_long = {str(path.relative_to(REPO)): n for path in MODULES.values()
                if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert too_long == {}


def test_functions_stay_within_the_size_budget():
    """From ``def`` to the last line, docstring included (nested functions count inside their parent)."""
    too_long = {}
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = length
    assert too_long == {}


#: the library's packages, lowest first: each imports only packages before it (the application is last)
LAYERS = ("protocol", "audio", "transport", "voice", "testing", "app")
#: imports that go up a layer, each inside a function with its reason
UPWARD = {("rtedge.protocol.events", "rtedge.audio.codec"), ("rtedge.protocol.events", "rtedge.audio")}


def test_each_package_imports_only_the_layers_below_it():
    graph = import_graph(with_function_level=True)
    upward = set()
    for module, targets in graph.items():
        layer = module.split(".")[1] if module.count(".") else ""
        for target in targets:
            other = target.split(".")[1] if target.count(".") else ""
            if layer in LAYERS and other in LAYERS and LAYERS.index(other) > LAYERS.index(layer):
                upward.add((module, target))
    assert upward == UPWARD
    assert all(t not in import_graph(with_function_level=False)[m] for m, t in UPWARD)  # lazy ones only


def test_every_module_says_what_it_owns_and_must_not_do():
    missing = []
    for module, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if "Owns" not in doc or "Must not" not in doc:
            missing.append(module)
    assert missing == []
