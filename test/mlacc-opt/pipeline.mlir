// RUN: mlacc-opt %s --pass-pipeline='builtin.module(symbol-dce,func.func(cse),canonicalize{max-iterations=3})' | filecheck %s
// RUN: mlacc-opt %s --pass-pipeline='symbol-dce,func.func(cse),canonicalize' | filecheck %s
// RUN: mlacc-opt %s --symbol-dce --cse --canonicalize=max-iterations=3 | filecheck %s
// RUN: mlacc-opt %s --pass-pipeline='builtin.module(test-fail-on{op=mla.no_such_op},cse)' | filecheck %s --check-prefix=CSE-ONLY
// RUN: mlacc-opt %s | filecheck %s --check-prefix=NONE

// Upstream passes run by name, with options, nested under anchors, mixed with mlacc passes;
// `builtin.module(...)` around the list is optional. Pass flags run in command-line order.

// CHECK-NOT: @dead
// CHECK-LABEL: func.func @add
// CHECK-NEXT: %[[TWO:.*]] = arith.constant 2 : i32
// CHECK-NEXT: return %[[TWO]]

// CSE-ONLY: func.func private @dead
// CSE-ONLY-LABEL: func.func @add
// CSE-ONLY-NEXT: %[[ONE:.*]] = arith.constant 1 : i32
// CSE-ONLY-NEXT: %[[SUM:.*]] = arith.addi %[[ONE]], %[[ONE]]

// NONE: %[[A:.*]] = arith.constant 1 : i32
// NONE-NEXT: %[[B:.*]] = arith.constant 1 : i32
// NONE-NEXT: arith.addi %[[A]], %[[B]]

func.func private @dead() {
  return
}

func.func @add() -> i32 {
  %a = arith.constant 1 : i32
  %b = arith.constant 1 : i32
  %sum = arith.addi %a, %b : i32
  return %sum : i32
}
