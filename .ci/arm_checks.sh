# Run inside an ARM root by .ci/arm after the README's Raspberry Pi guide, from the checkout (cwd).
# RTEDGE_ARM_VARIANT: "c" (the guide as written: the C kernels must be built and used) or "nocc"
# (no compiler in the root: the install fell back to the numpy twin, saying so in one log line).
set -x
venv=/opt/rtedge/venv
t_step=$(date +%s)
# step NAME: print how long the step that just ended took (the stage's log says where the time goes)
step() { local now; now=$(date +%s); echo "ci-arm: step $1: $(( now - t_step )) s"; t_step=$now; }
py=$venv/bin/python
echo "ci-arm: $(dpkg --print-architecture): $($py -c 'import platform, numpy; print(platform.machine(),
  platform.architecture()[0], "Python", platform.python_version(), "numpy", numpy.__version__,
  "intp", numpy.dtype(numpy.intp).name)')"

# -P: never import rtedge from the checkout, only the installed package the guide made
backend=$(cd /tmp && $py -P -c 'import rtedge.audio.codec as c; print(c.BACKEND)' 2>/tmp/import.err)
cat /tmp/import.err
if [ "$RTEDGE_ARM_VARIANT" = c ]; then
  [ "$backend" = c ] || { echo "ci-arm: the C kernels were not built or not used (backend $backend)"; exit 1; }
  [ ! -s /tmp/import.err ] || { echo "ci-arm: importing the codec logged something"; exit 1; }
else
  if command -v gcc || command -v cc; then echo "ci-arm: a C compiler is installed in the no-compiler root"; exit 1; fi
  [ "$backend" = numpy ] || { echo "ci-arm: expected the numpy twin, got $backend"; exit 1; }
  # exactly one log line, and it says what happened and what to do
  [ "$(wc -l < /tmp/import.err)" -eq 1 ] && grep -q "numpy twin" /tmp/import.err && grep -q gcc /tmp/import.err ||
    { echo "ci-arm: the fallback should log exactly one line naming the numpy twin and gcc"; exit 1; }
fi
echo "ci-arm: codec backend $backend"
step "import check"
if [ "$RTEDGE_ARM_VARIANT" = c ]; then
  # what gcc made of the kernels with the project's flags: auto-vectorized loops, and the NEON/VFP
  # multiply-adds in the built extension (the FIR kernels use GCC vector types)
  flags=$($py -c 'import tomllib; m = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["ext-modules"]
print(" ".join(m[0]["extra-compile-args"]))')
  inc=$($py -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  vec=$(gcc $flags -fPIC -I"$inc" -fopt-info-vec-optimized -c rtedge/audio/_codec.c -o /tmp/codec.o 2>&1 |
        grep "loop vectorized" | grep -o "_codec.c:[0-9]*" | cut -d: -f2 | sort -nu | tr '\n' ' ' || true)
  so=$($py -P -c 'import rtedge.audio._codec as m; print(m.__file__)')
  echo "ci-arm: gcc $(gcc -dumpversion) $flags: loops vectorized at _codec.c lines: ${vec:-none}"
  echo "ci-arm: built extension: $(objdump -d "$so" | grep -cE $'\tv?fmla\s+v[0-9]+\.4s') NEON fmla (4 x float32)," \
    "$(objdump -d "$so" | grep -cE $'\tvfma\.f32|\tvmla\.f32') VFP/NEON vfma/vmla"
fi


# tests/audio runs every codec test against both kernels (the C case skips only when it is not built), so the
# numpy twin's tests run in this architecture's "c" root.  Without a compiler what differs is the install that
# has no extension: the import check above, and the demo below, whose phrase goes through the fallback's
# resampler end to end.  No tests run there (the tests run on the checkout, not the install: the no-compiler
# roots repeated the "c" roots' tests, 7 minutes of emulated CPU beside the critical path, for nothing).
# Emulation is 5-20x slower than the hardware: the per-test timeout is raised, every test's waits last 10x
# longer before they fail (RTEDGE_TEST_TIME_SCALE), and each Hypothesis test runs a fifth of its examples
# (RTEDGE_TEST_EMULATED, tests/conftest.py).  -rs lists skip reasons, which the C-skip check below reads.
# tests/protocol is pure Python with no word-size dependence: it runs once, in the 64-bit root (the 32-bit one
# repeated it for minutes under emulation and pushed the whole run past its budget on a slow machine).
if [ "$RTEDGE_ARM_VARIANT" = c ]; then
  tests="tests/audio tests/voice/test_tick.py"
  [ "$(dpkg --print-architecture)" != arm64 ] || tests="$tests tests/protocol"
  # (no RTEDGE_CODEC here: tests start subprocesses on the checkout, where no extension is built)
  # test_codec_build's two install tests are what this stage does itself, at full size (with and without gcc).
  RTEDGE_TEST_EMULATED=1 RTEDGE_TEST_TIME_SCALE=10 \
    $py -P -m pytest -q -rs --durations=10 -p no:cacheprovider --import-mode=importlib -o timeout=900 \
    --deselect tests/audio/test_codec_build.py::test_install_without_a_compiler_falls_back_to_numpy \
    --deselect tests/audio/test_codec_build.py::test_install_with_a_compiler_builds_the_extension \
    $tests </dev/null 2>&1 | tee /tmp/pytest.out
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || { echo "ci-arm: tests failed"; exit 1; }
  if grep -q "extension rtedge.audio._codec is not built" /tmp/pytest.out; then
    echo "ci-arm: C kernel tests were skipped"; exit 1
  fi
  grep -E "^[0-9]+ passed" /tmp/pytest.out | sed "s/^/ci-arm: pytest: /"
  step "tests"
fi

$venv/bin/rtedge demo --fast </dev/null 2>&1 | tee /tmp/demo.out
[ "${PIPESTATUS[0]}" -eq 0 ] && grep -q "^turn 1: completed" /tmp/demo.out ||
  { echo "ci-arm: rtedge demo --fast did not complete a turn"; exit 1; }
echo "ci-arm: demo: $(grep "^turn 1: completed" /tmp/demo.out)"
step "demo"

# the unit the guide installed, checked by systemd itself
systemd-analyze verify /etc/systemd/system/rtedge.service
[ -L /etc/systemd/system/multi-user.target.wants/rtedge.service ] || { echo "ci-arm: unit not enabled"; exit 1; }
step "unit verified"
echo "ci-arm: all checks passed"
