"""The course's ConvNet, a small VGG (seed 002, section 4), built from the generated conv, pool and BN kernels.

    conv3×3(3→64)  BN ReLU                      maxpool(3, stride 2, pad 1)
    conv3×3(64→128) BN ReLU                     maxpool
    conv3×3(128→256) BN ReLU, conv3×3(256→256) BN ReLU   maxpool
    conv3×3(256→512) BN ReLU, conv3×3(512→512) BN ReLU   maxpool
    conv3×3(512→512) BN ReLU, conv3×3(512→512) BN ReLU   maxpool
    flatten, linear(512→10), softmax–cross-entropy

Every convolution is 3×3 with padding 1; 32×32 images end 1×1 after five pools.
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
    def __init__(self, n_channels=3, n_classes=10, plan=VGG_SMALL, backend="numpy", device="cpu",
                 dtype="float32", seed=42):
        self.backend = backend if isinstance(backend, Backend) else Backend(backend, device, dtype)
        rng = np.random.default_rng(seed)
        self.layers, channels = [], n_channels
        for item in plan:
            if item == "pool":
                self.layers.append(MaxPool2dModule(3, stride=2, padding=1, backend=self.backend))
                continue
            self.layers += [Conv2dModule(channels, item, 3, padding=1, input_layer=not self.layers,
                                         backend=self.backend, rng=rng),
                            BatchNorm2dModule(item, backend=self.backend),
                            ReLUModule(backend=self.backend)]
            channels = item
        self.layers += [FlattenModule(backend=self.backend),
                        LinearModule(channels, n_classes, backend=self.backend, rng=rng)]
        self.loss = SoftmaxCrossEntropyModule(backend=self.backend)
