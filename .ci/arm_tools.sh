# Run inside an ARM root by .ci/arm after the shared first steps of the README's Raspberry Pi guide (the
# venv exists): the test tools, once per architecture, in the layer both variants (c, nocc) start from.
set -x
venv=/opt/rtedge/venv
py=$venv/bin/python
t0=$(date +%s)
# the test tools (PyYAML from Debian: it has no 32-bit ARM wheel; mypy is not run here), and procps
# (/bin/kill, the unit's ExecReload=), which a Pi image has and the bare root lacks
sudo apt-get install -y -qq python3-yaml procps </dev/null >/dev/null
$py - > /tmp/test-reqs.txt <<'EOF'
import tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]
print("\n".join(r for r in extra if not r.startswith(("mypy", "pyyaml"))))
EOF
$venv/bin/pip install -q -r /tmp/test-reqs.txt </dev/null
echo "ci-arm: test tools installed in $(( $(date +%s) - t0 )) s"
