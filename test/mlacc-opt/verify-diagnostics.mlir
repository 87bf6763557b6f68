// RUN: mlacc-opt %s --split-input-file --verify-diagnostics

// The --verify-diagnostics directives, MLIR's semantics: the diagnostic's line is the
// directive's own line, @+N / @-N relative to it, @above the last line without a directive,
// @below the next one; the message matches as a substring (or, with -re, a regex in {{...}}).

func.func @same_line(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = -1.0 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32> // expected-error {{must be positive}}
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @above(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = -1.0 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  // expected-error @above {{'mla.rms_norm' op attribute 'eps' must be positive, got -1.0}}
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @minus(%x: tensor<1x4x64xf32>, %w: tensor<32xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<32xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
  // expected-error @-2 {{weight size is 32, expected 64}}
}

// -----

func.func @below(%x: tensor<1x4x64xf32>, %w: tensor<32xf32>) -> tensor<1x4x64xf32> {
  // expected-error @below {{weight size is 32}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<32xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @regex(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  // expected-error-re @+1 {{attribute 'eps' must be positive, got {{-?[0-9.]+}}}}
  %y = "mla.rms_norm"(%x, %w) {eps = -0.5 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

// An error with a note at another line.
func.func @twice() { // expected-note {{see existing symbol definition here}}
  return
}
// expected-error @+1 {{redefinition of symbol named 'twice'}}
func.func @twice() {
  return
}

// -----

// A chunk without diagnostics is fine too.
func.func @valid(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}
