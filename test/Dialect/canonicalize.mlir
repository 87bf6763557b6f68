// RUN: mlacc-opt %s --split-input-file --canonicalize --cse | filecheck %s

// Every mla/moe/fp8/mlacc op is Pure (value semantics): CSE merges identical ops and the
// canonicalizer's dead-code elimination drops ops whose results are unused.

// CHECK-LABEL: func.func @rms_norm$cse_and_dce
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x32xf32>, %[[W:[^:]+]]: tensor<32xf32>)
// CHECK-NEXT: %[[NORM:.*]] = "mla.rms_norm"(%[[X]], %[[W]])
// CHECK-NEXT: return %[[NORM]], %[[NORM]]
func.func @rms_norm$cse_and_dce(%x: tensor<4x32xf32>, %w: tensor<32xf32>) -> (tensor<4x32xf32>, tensor<4x32xf32>) {
  %a = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  %b = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  %dead = "mla.rms_norm"(%a, %w) {eps = 1.0e-6 : f64} : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  return %a, %b : tensor<4x32xf32>, tensor<4x32xf32>
}

// -----

// Different attributes are different computations: both ops stay.
// CHECK-LABEL: func.func @rms_norm$different_eps_kept
// CHECK: "mla.rms_norm"
// CHECK-SAME: eps = 9.9999999999999995E-7
// CHECK: "mla.rms_norm"
// CHECK-SAME: eps = 1.000000e-05
func.func @rms_norm$different_eps_kept(%x: tensor<4x32xf32>, %w: tensor<32xf32>) -> (tensor<4x32xf32>, tensor<4x32xf32>) {
  %a = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  %b = "mla.rms_norm"(%x, %w) {eps = 1.0e-5 : f64} : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  return %a, %b : tensor<4x32xf32>, tensor<4x32xf32>
}

// -----

// Two references to the same weight are one value; an unused one goes.
// CHECK-LABEL: func.func @weight$cse_and_dce
// CHECK-NEXT: %[[W:.*]] = "mlacc.weight"() {key = "layers.0.norm.weight"}
// CHECK-NOT: "mlacc.weight"
// CHECK: return %[[W]], %[[W]]
func.func @weight$cse_and_dce() -> (tensor<32xf32>, tensor<32xf32>) {
  %a = "mlacc.weight"() {key = "layers.0.norm.weight"} : () -> tensor<32xf32>
  %b = "mlacc.weight"() {key = "layers.0.norm.weight"} : () -> tensor<32xf32>
  %unused = "mlacc.weight"() {key = "layers.1.norm.weight"} : () -> tensor<32xf32>
  return %a, %b : tensor<32xf32>, tensor<32xf32>
}

// -----

// Routers with several results and optional operands merge like any pure op.
// CHECK-LABEL: func.func @router$cse
// CHECK-COUNT-1: "moe.router"
// CHECK-NOT: "moe.router"
// CHECK: return %[[R:.*]]#0, %[[R]]#0
func.func @router$cse(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xf32>) {
  %w1, %i1 = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = false,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  %w2, %i2 = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = false,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w1, %w2 : tensor<4x2xf32>, tensor<4x2xf32>
}

// -----

// CHECK-LABEL: func.func @quantize$dead_dropped
// CHECK-NOT: "fp8.quantize"
// CHECK: return
func.func @quantize$dead_dropped(%x: tensor<4x256xf32>) -> tensor<4x256xf32> {
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = false}
    : (tensor<4x256xf32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>)
  return %x : tensor<4x256xf32>
}

// -----

// The cache update has value semantics: an update nobody reads is dead, two identical ones
// are one.
// CHECK-LABEL: func.func @cache_update$cse_and_dce
// CHECK-SAME: (%[[CACHE:[^:]+]]: tensor<1x8x40xf32>, %[[E:[^:]+]]: tensor<1x1x40xf32>, %[[POS:[^:]+]]: tensor<1x1xi64>)
// CHECK-NEXT: %[[NEW:.*]] = "mla.cache_update"(%[[CACHE]], %[[E]], %[[POS]])
// CHECK-NEXT: return %[[NEW]], %[[NEW]]
func.func @cache_update$cse_and_dce(%cache: tensor<1x8x40xf32>, %e: tensor<1x1x40xf32>, %pos: tensor<1x1xi64>)
    -> (tensor<1x8x40xf32>, tensor<1x8x40xf32>) {
  %a = "mla.cache_update"(%cache, %e, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>, rope_layout = "none"}
    : (tensor<1x8x40xf32>, tensor<1x1x40xf32>, tensor<1x1xi64>) -> tensor<1x8x40xf32>
  %b = "mla.cache_update"(%cache, %e, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>, rope_layout = "none"}
    : (tensor<1x8x40xf32>, tensor<1x1x40xf32>, tensor<1x1xi64>) -> tensor<1x8x40xf32>
  %dead = "mla.cache_update"(%a, %e, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>, rope_layout = "none"}
    : (tensor<1x8x40xf32>, tensor<1x1x40xf32>, tensor<1x1xi64>) -> tensor<1x8x40xf32>
  return %a, %b : tensor<1x8x40xf32>, tensor<1x8x40xf32>
}
