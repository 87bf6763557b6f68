// RUN: mlacc-opt %S/mla-absorb-weights.mlir --split-input-file --mla-absorb-weights --mla-fuse-rope | filecheck %s
// RUN: mlacc-opt %S/mla-absorb-weights.mlir --split-input-file --mla-absorb-weights --mla-fuse-rope > %t.once
// RUN: mlacc-opt %t.once --split-input-file --mla-fuse-rope | diff - %t.once
// RUN: mlacc-opt %S/mla-absorb-weights.mlir --split-input-file --mla-absorb-weights --mla-fuse-rope | filecheck %s --check-prefix=NOCACHE
// RUN: mlacc-opt %S/mla-absorb-weights.mlir --split-input-file --mla-absorb-weights --mla-fuse-rope=max-positions=256 | filecheck %s --check-prefix=BOUNDED
// RUN: not mlacc-opt %S/mla-absorb-weights.mlir --mla-absorb-weights --mla-fuse-rope=max-positions=-1 2>&1 | filecheck %s --check-prefix=BAD

// Without a cache nothing bounds the positions, so the rotations stay (with the reason) unless
// max-positions sizes the tables.
// NOCACHE-LABEL: func.func @attention$no_cache
// NOCACHE: "mla.rotary_embedding"
// NOCACHE-SAME: mlacc.fuse_rope = "not fused: no KV cache bounds the positions of this attention; pass max-positions=N to fuse it with N-entry tables"
// NOCACHE: "mla.decoupled_attention"
// BOUNDED-LABEL: func.func @attention$no_cache
// BOUNDED: "mla.rope_tables"() {{.*}}max_positions = 256 : i64
// BOUNDED-NOT: "mla.rotary_embedding"
// BOUNDED: "mla.decoupled_attention"
// BOUNDED-SAME: rope_layout = "interleaved"
// BAD: error: pass 'mla-fuse-rope': option 'max-positions' must be >= 0, got -1

// Reuses the mla.attention inputs of mla-absorb-weights.mlir (absorbed decode, un-absorbed
// prefill with and without a cache). After fusion no rotation remains where its consumers can
// absorb it; the tables are built once per function at its entry.

// CHECK-LABEL: func.func
// CHECK-NEXT: "mla.rope_tables"()
// CHECK-NOT: "mla.rope_tables"
// CHECK: "mla.cache_update"({{.*}}) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>, rope_layout = "{{interleaved|rotate_half}}"}
// CHECK: "mla.latent_attention"({{.*}}, %{{[^ ,)]+}}#0, %{{[^ ,)]+}}#1) {{.*}}rope_layout = "{{interleaved|rotate_half}}"
