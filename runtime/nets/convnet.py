"""The course's ConvNet, a small VGG (seed 002, section 4), built from the generated conv, pool and BN kernels.

    conv3×3(3→64)  BN ReLU                      maxpool(3, stride 2, pad 1)
    conv3×3(64→128) BN ReLU                     maxpool
    conv3×3(128→256) BN ReLU, conv3×3(256→256) BN ReLU   maxpool
    conv3×3(256→512) BN ReLU, conv3×3(512→512) BN ReLU   maxpool
    conv3×3(512→512) BN ReLU, conv3×3(512→512) BN ReLU   maxpool
    flatten, linear(512→10), softmax–cross-entropy

Every convolution is 3×3 with padding 1; 32×32 images end 1×1 after five pools.

The course trained it in PyTorch with the framework's defaults (seed 002, section 4: "The rest of the
parameters used were also the default parameters provided"), so the convolutions and the linear layer start
from PyTorch's default initialisation (``init="torch"``: U(±1/√fan_in) weights and biases), batch norm from
γ = 1, β = 0 (eps 1e-5, momentum 0.1), and the images are prepared as the course's loader did
(``DATA_RECIPE``: runtime/training/data.py).
"""
from __future__ import annotations

import numpy as np

from runtime.kernels.backend import Backend
from runtime.nets.modules import (BatchNorm2dModule, Conv2dModule, FlattenModule, LinearModule, MaxPool2dModule,
                             ReLUModule, SoftmaxCrossEntropyModule)
from runtime.nets.network import Network

# Channels of each convolution; "pool" marks a max pool.
VGG_SMALL = (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool", 512, 512, "pool")


class ConvNet(Network):
    DATA_RECIPE = "convnet"  # runtime.training.data.load(..., recipe=ConvNet.DATA_RECIPE)

    def __init__(self, n_channels=3, n_classes=10, plan=VGG_SMALL, backend="numpy", device="cpu",
                 dtype="float32", seed=42, init="torch"):
        self.backend = backend if isinstance(backend, Backend) else Backend(backend, device, dtype)
        rng = np.random.default_rng(seed)
        self.layers, channels = [], n_channels
        for item in plan:
            if item == "pool":
                self.layers.append(MaxPool2dModule(3, stride=2, padding=1, backend=self.backend))
                continue
            self.layers += [Conv2dModule(channels, item, 3, padding=1, input_layer=not self.layers,
                                         backend=self.backend, rng=rng, init=init),
                            BatchNorm2dModule(item, backend=self.backend),
                            ReLUModule(backend=self.backend)]
            channels = item
        self.layers += [FlattenModule(backend=self.backend),
                        LinearModule(channels, n_classes, backend=self.backend, rng=rng, init=init)]
        self.loss = SoftmaxCrossEntropyModule(backend=self.backend)
