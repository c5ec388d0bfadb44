#!/usr/bin/env bash
# Fuzz the Parquet and Avro readers, the Delta log and deletion vectors, and the pipeline steps (expressions over extreme values)
# for a bounded time.
#   scripts/fuzz.sh [seconds-per-target=300] [parquet|avro|steps|delta|all]
# Uses libFuzzer (swiftc -sanitize=fuzzer, with the address sanitizer) in its own build
# folder; inputs it finds worth keeping go to .build/fuzz-corpus/<target>, crashes and
# timeouts to .build/fuzz-artifacts/. The committed seed corpus is
# Tests/SluiceFormatsTests/Fixtures/corpus/<target>. Set SEEDED=1 to run the plain
# seeded random-mutation loop instead (no sanitizer build needed).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
which="${2:-all}"
targets=(parquet avro steps delta)
[ "$which" = all ] || targets=("$which")
seeds=Tests/SluiceFormatsTests/Fixtures/corpus

if [ "${SEEDED:-0}" = 1 ]; then
  swift build -c release --product sluice-fuzz
  for t in "${targets[@]}"; do .build/release/sluice-fuzz "$t" "$seeds/$t" "$seconds"; done
  exit 0
fi

swift build -c release --product sluice-fuzz --build-path .build/fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld
mkdir -p .build/fuzz-artifacts
for t in "${targets[@]}"; do
  mkdir -p ".build/fuzz-corpus/$t"
  echo "== $t: $seconds s"
  # -malloc_limit_mb: no single allocation may exceed what a small input can justify.
  SLUICE_FUZZ_TARGET="$t" .build/fuzz/release/sluice-fuzz ".build/fuzz-corpus/$t" "$seeds/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 \
    -artifact_prefix=".build/fuzz-artifacts/$t-" -print_final_stats=1 2>&1 | grep -vE "^#[0-9]+\s+(NEW|REDUCE)" | tail -25
done
