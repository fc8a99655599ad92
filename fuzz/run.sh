#!/usr/bin/env bash
# The long fuzzing run (docs/testing.md, "Fuzzing"): every cargo-fuzz target, or the ones
# named, for FUZZ_SECONDS each (default 600), one after the other, from the repository root.
#
#   bash fuzz/run.sh                          # all seven targets, 10 minutes each
#   FUZZ_SECONDS=3600 bash fuzz/run.sh config # one target for an hour
#
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only rustc flags
# (-Zsanitizer=address, sanitizer coverage). The committed seeds (fuzz/corpus/<target>/) are
# read only; what the fuzzer learns goes to target/fuzz/corpus/<target>/, crashes to
# fuzz/artifacts/<target>/. A crash stops the run with libFuzzer's report and a non-zero exit:
# copy the input to fuzz/regressions/<target>/ (tests/fuzz_inputs.rs replays every file
# there), fix the code, and rerun.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_EACH="${FUZZ_SECONDS:-600}"
TARGETS=(config state live_hello api_body annexb h264_decode yuv)
if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "+ cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi
# The crates fuzzed are the versions the product ships: the fuzz workspace's lock file starts
# as a copy of the root's (cargo adds libfuzzer-sys and drops what the fuzz crate does not use).
cp Cargo.lock fuzz/Cargo.lock
export RUSTC_BOOTSTRAP=1
TARGET_DIR="${CARGO_TARGET_DIR:-target}/fuzz"
for t in "${TARGETS[@]}"; do
  mkdir -p "$TARGET_DIR/corpus/$t"
  echo "+ cargo fuzz run $t for ${SECONDS_EACH}s"
  # -timeout: an input that takes over 10 s is a hang, reported like a crash.
  cargo fuzz run --target-dir "$TARGET_DIR" "$t" "$TARGET_DIR/corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -print_final_stats=1
done
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_EACH}s each, no crash"
