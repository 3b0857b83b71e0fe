# Run inside an ARM root by .ci/arm after the shared first steps of the README's Raspberry Pi guide, in the
# layer both variants (c, nocc) start from: the Debian packages the tests need.  PyYAML comes from Debian (it
# has no 32-bit ARM wheel), procps gives /bin/kill (the unit's ExecReload=), which a Pi image has and the bare
# root lacks.  The Python test tools are put into the venv from outside (.ci/arm, host_tools): pip under
# emulation took 6.5 minutes for them, and armhf has no wheels for some of their dependencies.
set -x
t0=$(date +%s)
sudo apt-get install -y -qq python3-yaml procps </dev/null >/dev/null
echo "ci-arm: test packages installed in $(( $(date +%s) - t0 )) s"
