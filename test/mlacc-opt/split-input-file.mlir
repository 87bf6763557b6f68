// RUN: mlacc-opt %s --split-input-file | filecheck %s
// RUN: not mlacc-opt %s --split-input-file --pass-pipeline='builtin.module(test-fail-on{op=mla.kv_expand})' 2>&1 | filecheck %s --check-prefix=ERR
// RUN: not mlacc-opt %s 2>&1 | filecheck %s --check-prefix=WHOLE

// Each chunk is its own module; outputs are joined by `// -----`; diagnostics keep the line
// numbers of this file. Without --split-input-file the chunks define @norm twice.

// CHECK: module {
// CHECK-NEXT: func.func @norm
// CHECK: "mla.rms_norm"
// CHECK: {{^}}}
// CHECK-NEXT: {{^}}// -----
// CHECK-NEXT: module {
// CHECK-NEXT: func.func @norm
// CHECK: "mla.kv_expand"
// CHECK-NOT: // -----

func.func @norm(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

// ERR: split-input-file.mlir:[[# @LINE + 3]]:17: error: test-fail-on: failing on 'mla.kv_expand' as asked
// ERR-NOT: error:
func.func @norm(%latent: tensor<1x16x32xf32>, %wkv_b: tensor<128x32xf32>) -> (tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>) {
  %k_nope, %v = "mla.kv_expand"(%latent, %wkv_b) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
    : (tensor<1x16x32xf32>, tensor<128x32xf32>) -> (tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>)
  return %k_nope, %v : tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>
}

// WHOLE: split-input-file.mlir:[[# @LINE - 6]]:1: error: redefinition of symbol named 'norm'
