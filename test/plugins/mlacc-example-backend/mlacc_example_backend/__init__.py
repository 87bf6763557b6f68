"""An example out-of-tree mlacc target (`example-cpu`)."""
