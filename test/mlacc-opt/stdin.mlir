// RUN: mlacc-opt < %s | filecheck %s
// RUN: mlacc-opt - < %s | filecheck %s
// RUN: mlacc-opt %s | mlacc-opt - --canonicalize | filecheck %s
// RUN: not mlacc-opt - --test-fail-on=op=mla.rms_norm < %s 2>&1 | filecheck %s --check-prefix=ERR

// `-` (or no file) reads stdin; diagnostics then name `<stdin>`.

// CHECK-LABEL: func.func @norm
// CHECK: "mla.rms_norm"
// ERR: <stdin>:[[# @LINE + 3]]:8: error: test-fail-on: failing on 'mla.rms_norm' as asked
// ERR: mlacc-opt: note: reproduce with: mlacc-opt mlacc-repro-test-fail-on.mlir
func.func @norm(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}
