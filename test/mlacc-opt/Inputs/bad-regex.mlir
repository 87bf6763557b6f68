func.func @f() {
  // expected-error-re {{foo {{[a-}}}}
  return
}
