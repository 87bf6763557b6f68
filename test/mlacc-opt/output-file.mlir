// RUN: rm -rf %t && mkdir -p %t
// RUN: mlacc-opt %s -o %t/out.mlir
// RUN: filecheck %s --input-file=%t/out.mlir
// RUN: mlacc-opt %t/out.mlir -o=%t/again.mlir
// RUN: diff %t/out.mlir %t/again.mlir
// RUN: not mlacc-opt %s --test-fail-on=op=mla.rms_norm -o %t/failed.mlir 2> %t/stderr
// RUN: not ls %t/failed.mlir
// RUN: mlacc-opt %s -o %t/kept.mlir
// RUN: not mlacc-opt %s --test-fail-on=op=mla.rms_norm -o %t/kept.mlir 2> %t/stderr
// RUN: diff %t/out.mlir %t/kept.mlir
// RUN: not mlacc-opt %s -o %t/no/such/dir/out.mlir 2>&1 | filecheck %s --check-prefix=NODIR

// -o writes the whole output through a temporary file and a rename: a failing run leaves no
// file behind and does not clobber an existing one. (The failing runs write their reproducer
// to the current directory, which lit sets to the test's Output directory.)

// CHECK: module {
// CHECK: func.func @norm
// CHECK: "mla.rms_norm"
// NODIR: mlacc-opt: error: cannot write output file '{{.*}}/no/such/dir/out.mlir': No such file or directory

func.func @norm(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}
