// RUN: not mlacc-opt %s 2>&1 | filecheck %s
// RUN: not mlacc-opt < %s 2>&1 | filecheck %s --check-prefix=STDIN

// A syntax error: one `file:line:col: error:` line naming this file, the source line and a
// caret; no Python traceback, no IR on stdout.

// CHECK-NOT: Traceback
// CHECK: malformed-input.mlir:[[# @LINE + 5]]:51: error: expected ':' followed by operation type
// CHECK-NEXT: {{^}}  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
// CHECK-NEXT: {{^ +\^$}}
// STDIN: <stdin>:[[# @LINE + 2]]:51: error: expected ':' followed by operation type
func.func @missing_colon(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %y : tensor<4xf32>
}
// CHECK-NOT: error
// CHECK-NOT: module
