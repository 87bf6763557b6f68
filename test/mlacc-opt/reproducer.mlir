// RUN: rm -rf %t && mkdir -p %t && cd %t
// RUN: not mlacc-opt %s --canonicalize --test-fail-on=op=mla.rms_norm 2>&1 | filecheck %s
// RUN: filecheck %s --check-prefix=REPRO --input-file=%t/mlacc-repro-test-fail-on.mlir
// RUN: not mlacc-opt %t/mlacc-repro-test-fail-on.mlir --pass-pipeline='builtin.module(test-fail-on{op=mla.rms_norm})' 2>&1 | filecheck %s --check-prefix=AGAIN

// A failing step reports the op's location in the input, writes the IR as it was before the
// step to mlacc-repro-<step>.mlir in the current directory, and prints the one command that
// reproduces the failure from that file; running it fails the same way, at the same location.

// CHECK-NOT: Traceback
// CHECK: reproducer.mlir:[[# @LINE + 12]]:8: error: test-fail-on: failing on 'mla.rms_norm' as asked
// CHECK-NEXT: {{^}}  %y = "mla.rms_norm"
// CHECK-NEXT: ^
// CHECK-NEXT: mlacc-opt: note: the IR before step 'test-fail-on{op=mla.rms_norm}' is in mlacc-repro-test-fail-on.mlir
// CHECK-NEXT: mlacc-opt: note: reproduce with: mlacc-opt mlacc-repro-test-fail-on.mlir --pass-pipeline='builtin.module(test-fail-on{op=mla.rms_norm})'

// REPRO: // The IR of {{.*}}reproducer.mlir before pipeline step 'test-fail-on{op=mla.rms_norm}' failed.
// REPRO: "mla.rms_norm"{{.*}} loc([[LOC:#loc[0-9]*]])
// REPRO: [[LOC]] = loc("{{.*}}reproducer.mlir":[[# @LINE + 4]]:8)

// AGAIN: reproducer.mlir:[[# @LINE + 2]]:8: error: test-fail-on: failing on 'mla.rms_norm' as asked
func.func @norm(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}
