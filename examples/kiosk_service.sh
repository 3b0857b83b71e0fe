#!/usr/bin/env bash
# Install rtedge as a systemd service on a Raspberry Pi / Debian 12 kiosk: the README's Raspberry Pi guide,
# steps 1, 3 and 4, in one go.  Run it from a checkout of rtedge:  sudo examples/kiosk_service.sh
# Safe to run again: it keeps an existing /etc/rtedge/rtedge.toml and /etc/rtedge/api-key.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run me with sudo" >&2; exit 1; }

apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-venv python3-numpy python3-pyaudio alsa-utils
# optional: the C codec kernels (without a compiler rtedge uses its numpy twin)
apt-get install -y -qq --no-install-recommends gcc python3-dev
[ -x /opt/rtedge/venv/bin/python ] || python3 -m venv --system-site-packages /opt/rtedge/venv
/opt/rtedge/venv/bin/pip install -q --upgrade '.[server]'   # the [server] extra: 'rtedge demo' works too
/opt/rtedge/venv/bin/rtedge version

install -d -m 0755 /etc/rtedge
[ -e /etc/rtedge/rtedge.toml ] || install -m 0644 systemd/rtedge.toml /etc/rtedge/rtedge.toml
if [ ! -s /etc/rtedge/api-key ]; then
  echo "paste the API key, then Enter and Ctrl-D:"
  (umask 077; cat > /etc/rtedge/api-key)
fi
chmod 0600 /etc/rtedge/api-key
/opt/rtedge/venv/bin/rtedge check-config --config /etc/rtedge/rtedge.toml >/dev/null
/opt/rtedge/venv/bin/rtedge doctor --config /etc/rtedge/rtedge.toml || true   # advice only

install -m 0644 systemd/rtedge.service /etc/systemd/system/rtedge.service
systemctl daemon-reload
systemctl enable --now rtedge
systemctl --no-pager status rtedge || true
echo "log: journalctl -u rtedge -f    settings: /etc/rtedge/rtedge.toml, then: systemctl reload rtedge"
