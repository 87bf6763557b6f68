// RUN: mlacc-opt %s --split-input-file --verify-diagnostics

func.func @wrong_op(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = "mla.rms_norm"(%x, %x) {eps = 1.0e-6 : f64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  // expected-error @+1 {{'accel.kernel' op attribute 'op' is 'torch.aten.linear' but its operand is defined by 'mla.rms_norm'}}
  "accel.kernel"(%y) ({
    "accel.vector"() {ops = 4 : i64} : () -> ()
  }) {op = "torch.aten.linear", chips = 1 : i64, cores = 1 : i64, tiles = 1 : i64, buffers = 2 : i64, sram_bytes = 0 : i64, flops = 0.0 : f64, hbm_bytes = 0.0 : f64} : (tensor<4xf32>) -> ()
  return %y : tensor<4xf32>
}

// -----

func.func @graph_op_in_body(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = "mla.rms_norm"(%x, %x) {eps = 1.0e-6 : f64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  // expected-error @+1 {{'accel.kernel' op body may hold only schedule ops, found 'mla.rms_norm'}}
  "accel.kernel"(%y) ({
    %z = "mla.rms_norm"(%x, %x) {eps = 1.0e-6 : f64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  }) {op = "mla.rms_norm", chips = 1 : i64, cores = 1 : i64, tiles = 1 : i64, buffers = 2 : i64, sram_bytes = 0 : i64, flops = 0.0 : f64, hbm_bytes = 0.0 : f64} : (tensor<4xf32>) -> ()
  return %y : tensor<4xf32>
}

// -----

func.func @zero_cores(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = "mla.rms_norm"(%x, %x) {eps = 1.0e-6 : f64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  // expected-error @+1 {{'accel.kernel' op attribute 'cores' must be >= 1, got 0}}
  "accel.kernel"(%y) ({
    "accel.vector"() {ops = 4 : i64} : () -> ()
  }) {op = "mla.rms_norm", chips = 1 : i64, cores = 0 : i64, tiles = 1 : i64, buffers = 2 : i64, sram_bytes = 0 : i64, flops = 0.0 : f64, hbm_bytes = 0.0 : f64} : (tensor<4xf32>) -> ()
  return %y : tensor<4xf32>
}

// -----

func.func @bad_dma(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = "mla.rms_norm"(%x, %x) {eps = 1.0e-6 : f64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  "accel.kernel"(%y) ({
    // expected-error @+1 {{'accel.dma' op attribute 'direction' must be one of ('in', 'out', 'once'), got 'sideways'}}
    "accel.dma"() {direction = "sideways", bytes = 16 : i64} : () -> ()
  }) {op = "mla.rms_norm", chips = 1 : i64, cores = 1 : i64, tiles = 1 : i64, buffers = 2 : i64, sram_bytes = 0 : i64, flops = 0.0 : f64, hbm_bytes = 0.0 : f64} : (tensor<4xf32>) -> ()
  return %y : tensor<4xf32>
}
