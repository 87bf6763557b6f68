// Found by test/fuzz/fuzz_mlacc_opt.py: MLIR's parser rejects this without any diagnostic.
// mlacc-opt must still say that the input is invalid, on one error line.
// RUN: not mlacc-opt %s 2>&1 | filecheck %s
// CHECK: silent-parse-failure.mlir: error: invalid MLIR: the parser stopped without saying where
// CHECK-NOT: Traceback

func.func @f() {
  %0 = "mlacc.weight"() {key = "a"} : () -> !torch.vtensor<[2],f32> loc(#loc1)mlacc.weight"() {key = "b"} : () -> !torch.vtensor<[2],f32>
  return
}
#loc1 = loc("x.py":1:1)
