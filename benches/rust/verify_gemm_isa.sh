#!/usr/bin/env bash
# Shows which micro-kernel family of the gemm crate oxinet's matmul really runs on this
# CPU: stops in gdb at the first call of the AVX-512, AVX2/FMA or scalar f32 kernel.
# Usage: bash benches/rust/verify_gemm_isa.sh [python]   (needs gdb and an installed oxinet)
set -euo pipefail
py="${1:-python}"
so=$("$py" -c "import oxinet._core as c; print(c.__file__)")
addr() { nm -C "$so" | grep -E " gemm_f32::gemm::f32::$1::gemm_basic$" | cut -d' ' -f1; }
init=$(nm "$so" | grep " PyInit__core$" | cut -d' ' -f1)
args=()
for isa in avx512f fma scalar; do
    a=$(addr "$isa" || true)
    [ -n "$a" ] && args+=(-ex "break *(\$pc - 0x$init + 0x$a)")
done
gdb -batch -ex "set breakpoint pending on" -ex "break PyInit__core" -ex run "${args[@]}" -ex continue \
    --args "$py" -c "import numpy as np, oxinet; a = np.ones((256, 256), np.float32); oxinet.ops.matmul(a, a)" \
    2>&1 | grep -E "hit Breakpoint [0-9]+, .*gemm_basic" | sed -E 's/.*in (gemm_f32[^ ]*gemm_basic).*/runs: \1/'
