// RUN: not mlacc-opt %s 2>&1 | filecheck %s
// RUN: mlacc-opt %s --allow-unregistered-dialect | filecheck %s --check-prefix=ALLOW

// CHECK: unregistered-dialect.mlir:[[# @LINE + 4]]:21: error: operation being parsed with an unregistered dialect
// ALLOW: "vendor.dma_start"(%{{.*}}) : (tensor<4xf32>) -> ()
// ALLOW-NEXT: return
func.func @f(%x: tensor<4xf32>) {
  "vendor.dma_start"(%x) : (tensor<4xf32>) -> ()
  return
}
