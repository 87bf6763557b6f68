"""The `sim` target's run side: device descriptions, the timing simulator and its reports.

Pure Python and torch; never MLIR, so a compiled `sim` artifact runs where torch-mlir is not
installed.
"""
