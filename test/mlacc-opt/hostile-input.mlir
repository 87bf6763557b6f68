// RUN: %python -c "print('func.func @f() attributes {a = ' + '[' * 20000 + ']' * 20000 + '} { return }')" > %t.deep.mlir
// RUN: not mlacc-opt %t.deep.mlir 2>&1 | filecheck %s --check-prefix=DEEP
// RUN: %python -c "print('func.func @f(%%x: ' + 'tuple<' * 300 + 'i32' + '>' * 300 + ') { return }')" | not mlacc-opt - 2>&1 | filecheck %s --check-prefix=DEEP-TYPE
// RUN: not mlacc-opt /dev/zero 2>&1 | filecheck %s --check-prefix=ZERO
// RUN: not mlacc-opt %s 2>&1 > /dev/full | filecheck %s --check-prefix=FULL
// RUN: not mlacc-opt %S/Inputs/bad-regex.mlir --verify-diagnostics 2>&1 | filecheck %s --check-prefix=REGEX

// Inputs built to break the tool get one error line and a non-zero exit, not a crash or an
// "internal error": nesting deep enough to overflow MLIR's recursive parser is refused before
// parsing, endless or binary input is refused while reading, a full disk and a bad regex in
// a directive are named.

// DEEP: deep.mlir:1:287: error: nesting deeper than 256 levels (brackets, types, regions)
// DEEP-NOT: Traceback
// DEEP-TYPE: <stdin>:1:{{[0-9]+}}: error: nesting deeper than 256 levels
// ZERO: mlacc-opt: error: '/dev/zero' is not MLIR text: it contains NUL bytes
// FULL: mlacc-opt: error: cannot write the output to stdout: No space left on device
// FULL-NOT: error
// REGEX: bad-regex.mlir:2:6: error: invalid regex in expected-error-re directive: unterminated character set at position 5

func.func @f() {
  return
}
