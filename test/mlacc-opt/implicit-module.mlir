// RUN: mlacc-opt %s | filecheck %s
// RUN: not mlacc-opt %S/Inputs/two-top-level-ops.mlir 2>&1 | filecheck %s --check-prefix=LINE1

// Several top-level ops (or one that is not a module) go into an implicit `builtin.module`,
// as in mlir-opt, without moving any line or column in diagnostics.

// CHECK: module {
// CHECK-NEXT: func.func @first
// CHECK: func.func @second
// CHECK-NOT: module

// The error is on line 1 of the input, at the op's own column.
// LINE1: two-top-level-ops.mlir:1:59: error: 'mla.rms_norm' op attribute 'eps' must be positive, got -1.0

func.func @first() {
  return
}
func.func @second() {
  return
}
