"""Networks built from the generated kernels (modules, the MLP, the ConvNet) and the torch.nn twin of the ConvNet."""
