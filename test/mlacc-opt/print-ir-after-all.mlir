// RUN: mlacc-opt %s --symbol-dce --canonicalize --mlir-print-ir-after-all -o %t.out 2> %t.err
// RUN: filecheck %s --input-file=%t.err
// RUN: filecheck %s --check-prefix=OUT --input-file=%t.out
// RUN: mlacc-opt %s --pass-pipeline='builtin.module(symbol-dce,func.func(cse))' --mlir-print-ir-after-all --mlir-print-op-generic 2>&1 >/dev/null | filecheck %s --check-prefix=GENERIC

// The IR after each pipeline step goes to stderr, the result to the output.

// CHECK: // -----// IR Dump After symbol-dce //----- //
// CHECK-NEXT: module {
// CHECK-NOT: @unused
// CHECK: "mla.rms_norm"
// CHECK: // -----// IR Dump After canonicalize //----- //
// CHECK-NEXT: module {
// CHECK-NOT: IR Dump

// OUT: func.func @norm
// OUT-NOT: @unused

// GENERIC: // -----// IR Dump After symbol-dce //----- //
// GENERIC-NEXT: "builtin.module"() ({
// GENERIC: // -----// IR Dump After func.func(cse) //----- //
// GENERIC-NEXT: "builtin.module"() ({
// GENERIC: "func.func"()

func.func private @unused() {
  return
}

func.func @norm(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}
