"""Loading and running the generated kernels: array backends, the calling convention, step capture."""
