// RUN: mlacc-opt --help | filecheck %s
// RUN: mlacc-opt -h | filecheck %s

// --help lists the tool's options and every registered pass with its summary and options.

// CHECK: USAGE: mlacc-opt [FILE|-]
// CHECK: --pass-pipeline=PIPELINE
// CHECK: --split-input-file
// CHECK: --verify-diagnostics
// CHECK: --mlir-print-ir-after-all
// CHECK: PASSES
// CHECK: --test-fail-on {{ +}}Test pass: emit an error at the first op named `op` and fail
// CHECK-NEXT: op=<string> {{ +}}name of the op to fail on
// CHECK: Upstream MLIR passes (canonicalize, cse
