#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of everything that reads untrusted bytes:
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default: 60 s, every target
#
# Targets (fuzz/fuzz_targets/, thin wrappers around src/fuzzing.rs):
#   archive_reader  a whole .baler file: open, inspect, embedded models, decode every chunk
#   chunk_decoder   one codec chunk under codings chosen by its first bytes (+ a stand-in model),
#                   re-encoded and checked against its bound when it decodes
#   filter_decode   the HDF5 filter's decode path (cd_values + chunk), as capi::filter runs it
#   int_block       one integer block (a chain of stages: predictors, reference, ac, rans, packing),
#                   re-encoded and decoded again when it decodes
#   onnx_loader     manifest.json + ONNX bytes: the ONNX reader, manifest validation, bundle,
#                   store and embedded-model checks (never ONNX Runtime's own session builder)
#   rntuple_reader  a ROOT file holding an RNTuple: anchor, envelopes, page lists, every field
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/, made by
# fuzz/make_seeds.py) and a working corpus (fuzz/corpus/<target>/, gitignored, kept between
# runs), runs for the given time with overflow checks and debug assertions on (-a) and address
# sanitizer, and writes any crashing input to fuzz/artifacts/<target>/. Keep each one as a
# regression file under tests/fuzz_regressions/<target>/ (tests/fuzz_regressions.rs replays it).
# Prints a table and exits 1 if any target found a crash, leak, timeout or out-of-memory.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz passes nightly-only flags
# to rustc (-Zsanitizer=address, ...); on a stable toolchain RUSTC_BOOTSTRAP=1 lets it, which is
# what this script sets. Not part of scripts/test.sh or CI's default path.
set -euo pipefail

SECS="${1:-60}"
shift || true
ALL=(archive_reader chunk_decoder filter_decode onnx_loader int_block rntuple_reader)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
RSS_MB="${FUZZ_RSS_MB:-2048}"
MALLOC_MB="${FUZZ_MALLOC_MB:-1024}"
TIMEOUT_S="${FUZZ_TIMEOUT_S:-20}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 2; }
# The model store the filter and archive targets may search: an empty one, never the user's.
export BALER_MODEL_PATH="${TMPDIR:-/tmp}/balerfile-fuzz-empty-store"
# zstd's C code is built by gcc (cc-rs passes the sanitizer flag on) and runs under LLVM's ASan
# runtime; gcc's stack-use-after-scope instrumentation then misfires inside zstd's compressor
# (ZSTD_selectBtGetAllMatches reading its own local table, levels >= 19). That one check is
# off for C code; ASan stays on for it otherwise, and everything stays on for Rust.
export CFLAGS="${CFLAGS:-} -fno-sanitize-address-use-after-scope"

echo "building the fuzz targets (fuzz/target) ..." >&2
nice -n 10 cargo fuzz build -a

rows=()
failed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(ls "artifacts/$t" | wc -l)
    log="artifacts/$t.log"
    set +e
    nice -n 10 cargo fuzz run -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$MALLOC_MB" \
        -timeout="$TIMEOUT_S" -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $5}' || true)
    # Stopped early (a crash): the time it ran, from its executions and rate.
    [ -n "$secs" ] || { [ -n "$execs" ] && [ "${rate:-0}" -gt 0 ] && secs=$(( execs / rate )); } || true
    corpus=$(ls "corpus/$t" | wc -l)
    crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed=1
        [ "$crashes" -gt 0 ] || crashes="rc=$rc"
        echo "== $t: see fuzz/$log; new inputs in fuzz/artifacts/$t/:" >&2
        grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY)' "$log" | head -5 >&2 || true
    fi
    rows+=("$(printf '%-15s %8s %12s %9s %8s %8s' "$t" "${secs:-$SECS}" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes")")
done

printf '%-15s %8s %12s %9s %8s %8s\n' target seconds executions exec/s corpus crashes
printf '%s\n' "${rows[@]}"
exit "$failed"
