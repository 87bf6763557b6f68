func.func @bad(%x: tensor<4xf32>) -> tensor<4xf32> { %y = "mla.rms_norm"(%x, %x) {eps = -1.0 : f64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32> return %y : tensor<4xf32> }
func.func @good() {
  return
}
