"""``rtedge doctor``: check the install and say what to fix.

Each check prints one line, ``ok``, ``warn`` or ``FAIL``, and for the last two
what to do about it.  The exit code is 0 without failures, 9 (``EXIT_DOCTOR``) otherwise.
Nothing secret is printed: the API key only by its source.

Owns: ``rtedge doctor``'s checks.  Must not: fail to start when numpy, the codec or PyAudio is broken (it
reports them).
"""

from __future__ import annotations

import argparse
import grp
import importlib.util
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .exit_codes import EXIT_DOCTOR, EXIT_OK
from .settings import is_loose, is_sound_card, resolve_api_key
from .settings_load import config_from_args
from .._version import __version__
from ..errors import AudioError, ConfigError
from ..protocol.dialects import get_dialect
from ..protocol.dialects.base import redact_url

Result = tuple[str, str]  # ("ok" | "warn" | "FAIL", message)
DEFAULT_CONFIG = "/etc/rtedge/rtedge.toml"
#: where the shipped unit's LoadCredential= reads the key
UNIT_CREDENTIAL = "/etc/rtedge/api-key"


def check_python() -> Result:
    return "ok", f"rtedge {__version__} on Python {sys.version.split()[0]} ({sys.executable})"


def check_codec() -> Result:
    # lazy: doctor reports a broken numpy, codec or PyAudio instead of failing to start
    from ..audio import codec

    if codec.BACKEND == "numpy":
        return "warn", ("codec backend: numpy (works, but slower on a Pi); for the C kernels install "
                        "gcc and python3-dev (apt) and reinstall rtedge")
    return "ok", f"codec backend: {codec.BACKEND}"


def check_server_extra() -> Result:
    if importlib.util.find_spec("websockets") is None:
        return "warn", ("websockets not installed: 'rtedge demo' and 'rtedge serve' need it; "
                        "pip install 'rtedge[server]'")
    return "ok", "local server: websockets installed ('rtedge demo' and 'rtedge serve' work)"


def check_portaudio() -> Result:
    try:
        # lazy: doctor reports a broken numpy, codec or PyAudio instead of failing to start
        from ..audio._pyaudio import load_pyaudio

        pyaudio = load_pyaudio()
    except AudioError as exc:
        return "FAIL", str(exc)
    return "ok", f"PortAudio: {pyaudio.get_portaudio_version_text()} (PyAudio {pyaudio.__version__})"


def check_audio_group() -> Result:
    if not os.path.isdir("/dev/snd"):
        return "warn", ("no /dev/snd: no ALSA sound devices on this machine (is the sound card's driver "
                        "loaded?)")
    try:
        gid = grp.getgrnam("audio").gr_gid
    except KeyError:
        return "warn", "there is no 'audio' group; the devices in /dev/snd decide who may open them"
    if os.geteuid() == 0 or gid in os.getgroups():
        return "ok", "this user may open /dev/snd (root or group 'audio')"
    return "warn", ("this user is not in group 'audio': 'sudo usermod -aG audio $USER', then log in again "
                    "(the systemd unit adds the group by itself)")


def check_devices(config: Any) -> list[Result]:
    # without a config, or with a sound card configured, missing devices are a failure
    cards = config is None or any(is_sound_card(s) for s in (config.audio.mic, config.audio.speaker))
    level = "FAIL" if cards else "warn"
    try:
        # lazy: doctor reports a broken numpy, codec or PyAudio instead of failing to start
        from ..audio._pyaudio import list_devices, resolve_device

        infos = list_devices()
    except AudioError as exc:
        return [(level, f"audio devices: {exc}")]
    if not infos:
        return [(level, "PortAudio found no audio devices: check 'aplay -l' and 'arecord -l', the 'audio' "
                        "group, and /etc/asound.conf")]
    ins = sum(1 for d in infos if d.max_input_channels > 0)
    outs = sum(1 for d in infos if d.max_output_channels > 0)
    results: list[Result] = [("ok", f"audio devices: {ins} with inputs, {outs} with outputs "
                                    "('rtedge devices' lists them)")]
    if config is None:
        return results
    sides = (("audio.mic", config.audio.mic, False), ("audio.speaker", config.audio.speaker, True))
    for key, spec, output in sides:
        kind, _, rest = spec.partition(":")
        if not is_sound_card(spec):
            results.append(("ok", f"{key} = {spec!r} (not a sound card)"))
            continue
        name = rest if kind == "pa" else spec
        target = None if name in ("", "default") else (int(name) if name.isdigit() else name)
        try:
            found = resolve_device(infos, target, output=output)
            results.append(("ok", f"{key} = {spec!r}: {found.describe()}"))
        except AudioError as exc:
            results.append(("FAIL", f"{key} = {spec!r}: {exc}; set {key} to one of them"))
    return results


def check_config(args: argparse.Namespace) -> tuple[Any, list[Result]]:
    path = args.config or os.environ.get("RTEDGE_CONFIG")
    if not path and os.path.exists(DEFAULT_CONFIG):
        args.config = path = DEFAULT_CONFIG
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return None, [("FAIL", f"config: {line}") for line in str(exc).splitlines()]
    where = path or "no file: defaults, environment and flags; pass --config"
    return config, [("ok", f"config: valid ({where}); 'rtedge check-config' prints it")]


def check_api_key(config: Any) -> Result:
    try:
        key = resolve_api_key(config.provider, where=config.where("provider.api_key_file"))
    except ConfigError as exc:
        return "FAIL", f"API key: {exc}"
    if key is None and os.path.exists(UNIT_CREDENTIAL):
        mode = os.stat(UNIT_CREDENTIAL).st_mode
        if is_loose(mode):
            return "warn", (f"API key: {UNIT_CREDENTIAL} is readable by group/others: "
                            f"chmod 600 {UNIT_CREDENTIAL}")
        return "ok", (f"API key: {UNIT_CREDENTIAL} is there for the systemd unit "
                      "(LoadCredential; not read here)")
    if key is None and not _needs_key(config):
        return "ok", "API key: none found, none needed (a loopback endpoint, or a provider without keys)"
    if key is None:
        return "warn", ("API key: none found; put it in a file readable only by you and set "
                        f"provider.api_key_file (under systemd: {UNIT_CREDENTIAL}, see the unit's "
                        "LoadCredential=)")
    path = config.provider.api_key_file
    if path and key.source == path and is_loose(os.stat(path).st_mode):
        return "warn", f"API key: {path} is readable by group/others: chmod 600 {path}"
    return "ok", f"API key: from {key.source} (not shown)"


def _needs_key(config: Any) -> bool:
    """Whether the configured endpoint takes a key (True when the URL cannot be made: that is reported
    by the config check)."""
    from .launch import endpoint_needing_key  # lazy: launch loads numpy and the audio devices

    try:
        return endpoint_needing_key(config) is not None
    except ConfigError:
        return True


def check_endpoint(config: Any, timeout: float = 5.0) -> Result:
    try:
        p = config.provider
        url = get_dialect(p.name).url(p.model or None, p.url or None)
    except ConfigError as exc:  # (no URL given where the provider has no default one)
        return "FAIL", f"endpoint: {exc}"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    shown = redact_url(url)
    t0 = time.monotonic()
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout) as sock:
            if parts.scheme == "wss":
                ctx = ssl.create_default_context(cafile=config.provider.ca_certs or None)
                with ctx.wrap_socket(sock, server_hostname=parts.hostname):
                    pass
    except ssl.SSLError as exc:
        return "FAIL", (f"endpoint {shown}: TLS failed ({exc.reason or exc}); is the clock right "
                        "(timedatectl)? is provider.ca_certs needed?")
    except OSError as exc:
        return "FAIL", (f"endpoint {shown}: unreachable ({exc.strerror or exc}); check the network, DNS "
                        "and provider.url")
    what = "TCP + TLS" if parts.scheme == "wss" else "TCP"
    return "ok", f"endpoint {shown}: reachable ({what} in {(time.monotonic() - t0) * 1000:.0f} ms)"


def check_service() -> Result:
    for path in ("/etc/systemd/system/rtedge.service", "/lib/systemd/system/rtedge.service"):
        if os.path.exists(path):
            return "ok", f"systemd unit installed: {path} ('journalctl -u rtedge -f' shows its log)"
    return "warn", "systemd unit not installed (optional; see the Raspberry Pi guide in the README)"


def check_features(config: Any) -> list[Result]:
    """What the configuration asks of this install: the echo canceller's extension, the wake-word extra
    (``run`` refuses to start without them; the config itself is valid)."""
    # lazy: each loads its extension (numpy, the wake-word library) only when the config asks for it
    from ..audio import aec
    from ..voice import wake

    results: list[Result] = []
    if config.vad.echo_guard == "aec":
        results.append(("ok", "echo canceller: libspeexdsp extension built (vad.echo_guard = aec)")
                       if aec.available() else ("FAIL", f"vad.echo_guard = aec: {aec.UNAVAILABLE}"))
    word = config.wake.word
    if word:
        results.append(("ok", f"wake word: the wake extra loads (wake.word = {word!r})")
                       if wake.available() else ("FAIL", f"wake.word = {word!r}: {wake.UNAVAILABLE}"))
    return results


def cmd_doctor(args: argparse.Namespace) -> int:
    """Run every check, print one line each; exit 9 (:data:`~rtedge.app.exit_codes.EXIT_DOCTOR`) if any failed."""
    config, results = check_config(args)
    checks: list[Callable[[], Any]] = [check_python, check_codec, check_server_extra, check_portaudio,
                                       check_audio_group, lambda: check_devices(config), lambda: results,
                                       check_service]
    if config is not None:
        checks.append(lambda: check_api_key(config))
        checks.append(lambda: check_features(config))
        if not args.no_network:
            checks.append(lambda: check_endpoint(config))
    failed = 0
    for check in checks:
        out = check()
        for level, message in out if isinstance(out, list) else [out]:
            failed += level == "FAIL"
            print(f"{level:<5} {message}", flush=True)
    print("all good" if not failed else f"{failed} problem(s) to fix", flush=True)
    return EXIT_DOCTOR if failed else EXIT_OK
