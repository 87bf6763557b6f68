// RUN: not mlacc-opt %s --split-input-file --verify-diagnostics 2>&1 | filecheck %s

// What --verify-diagnostics reports when the directives and the diagnostics disagree (like
// mlir-opt): each produced diagnostic nobody expected, each expected one that did not come.

// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 4]]:8: error: unexpected error: 'mla.rms_norm' op attribute 'eps' must be positive, got -1.0
// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 2]]:6: error: expected error "must be negative" was not produced
func.func @wrong_message(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{must be negative}}
  %y = "mla.rms_norm"(%x, %w) {eps = -1.0 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 4]]:8: error: unexpected error: 'mla.rms_norm' op weight size is 32, expected 64
// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 2]]:6: error: expected error "weight size is 32" was not produced
func.func @wrong_line(%x: tensor<1x4x64xf32>, %w: tensor<32xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+2 {{weight size is 32}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<32xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 2]]:8: error: unexpected error: 'mla.rms_norm' op weight size is 32, expected 64
func.func @not_expected(%x: tensor<1x4x64xf32>, %w: tensor<32xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<32xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 2]]:6: error: expected error "must be positive" was not produced
func.func @valid_op(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{must be positive}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 4]]:8: error: 'error' diagnostic emitted when expecting a 'warning'
// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 2]]:6: error: expected warning "must be positive" was not produced
func.func @wrong_kind(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  // expected-warning @+1 {{must be positive}}
  %y = "mla.rms_norm"(%x, %w) {eps = -1.0 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

// CHECK: verify-diagnostics-mismatch.mlir:[[# @LINE + 2]]:6: error: malformed expected{{.}}error directive
func.func @malformed() {
  // expected-error @+1 the message must be in double braces
  return
}
// CHECK-NOT: error:
