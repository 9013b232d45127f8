"""Training runtime: composes the generated kernels; derives nothing."""
