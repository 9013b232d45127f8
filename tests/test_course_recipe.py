"""The course's recipes: the ConvNet starts from PyTorch's default initialisation and reads CIFAR-10 as the
ConvNet's edition of the course did (mean image subtracted, all 50,000 training images); the MLP keeps its
Kaiming initialisation and per-channel standardisation."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from runtime.nets.convnet import ConvNet
from runtime.nets.mlp import MLP
from runtime.nets.modules import Conv2dModule, LinearModule, initial_weights
from runtime.nets.torch_convnet import torch_copy
from runtime.training.data import RECIPES, load

# A 1×1 image after five pools, as the default plan ends, with few channels: fast to build.
SMALL_PLAN = (4, "pool", 6, "pool", 6, "pool", 8, "pool", 8, "pool")


def uniform_moments_hold(w, bound, z=6.0):
    """w's sample mean, variance and deciles are those of U(−bound, bound), within z standard errors."""
    w = np.asarray(w, dtype=np.float64).ravel()
    n = w.size
    assert np.max(np.abs(w)) <= bound * (1 + 1e-6)
    assert np.max(np.abs(w)) >= bound * (1 - 20 / n)   # it reaches the bound: the scale is the bound itself
    var = bound ** 2 / 3
    assert abs(w.mean()) <= z * np.sqrt(var / n)
    assert abs(w.var() - var) <= z * np.sqrt(4 * bound ** 4 / 45 / n)   # Var(w²) = b⁴/5 − b⁴/9
    q = np.linspace(0.1, 0.9, 9)
    # a decile of n uniform draws has standard error √(q(1 − q)/n) · 2·bound
    assert np.all(np.abs(np.quantile(w, q) - (2 * q - 1) * bound) <= z * np.sqrt(q * (1 - q) / n) * 2 * bound)


@pytest.mark.parametrize("shape", [(64, 128, 3, 3), (2000, 300)])
def test_torch_init_has_pytorchs_default_distribution(shape):
    """``init="torch"`` draws what nn.Conv2d / nn.Linear's reset_parameters draw: kaiming_uniform_(a=√5)
    weights and U(±1/√fan_in) biases; PyTorch's own layers pass the same checks."""
    fan_in = int(np.prod(shape[1:]))
    w, b = initial_weights(np.random.default_rng(0), shape, fan_in, "torch")
    torch.manual_seed(0)
    ref = nn.Conv2d(shape[1], shape[0], shape[2:]) if len(shape) == 4 else nn.Linear(shape[1], shape[0])
    bound = 1 / np.sqrt(fan_in)
    for weight in (w, ref.weight.detach().numpy()):
        assert weight.shape == shape
        uniform_moments_hold(weight, bound)
    for bias in (b, ref.bias.detach().numpy()):
        assert bias.shape == (shape[0],)
        assert np.max(np.abs(bias)) <= bound and abs(bias.mean()) <= 6 * bound / np.sqrt(3 * shape[0])
    assert np.all(b != 0)


def test_kaiming_init_stays_the_mlps():
    """The MLP (the course's NumPy modules) keeps N(0, 2/fan_in) weights, N(0, 1/fan_in) on the input layer,
    and zero biases."""
    net = MLP(3072, [1000, 500], 10, dtype="float64", seed=1)
    linears = [layer for layer in net.layers if isinstance(layer, LinearModule)]
    for n, layer in enumerate(linears):
        w = layer.params["weight"]
        std = np.sqrt((1.0 if n == 0 else 2.0) / w.shape[1])
        assert abs(w.std() / std - 1) <= 6 * np.sqrt(0.5 / w.size) and abs(w.mean()) <= 6 * std / np.sqrt(w.size)
        assert not np.any(layer.params["bias"])
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        LinearModule(4, 3, init="xavier")


def test_convnet_starts_from_pytorchs_default_and_its_twin_from_the_same_weights():
    """Every convolution and the linear layer of the default ConvNet: weights and biases within U(±1/√fan_in),
    not Kaiming normal's (which exceed that bound); the torch.nn twin holds exactly the same values."""
    net = ConvNet(plan=SMALL_PLAN, dtype="float64", seed=3)
    layers = [layer for layer in net.layers if isinstance(layer, (Conv2dModule, LinearModule))]
    assert len(layers) == 6
    for layer in layers:
        w, b = layer.params["weight"], layer.params["bias"]
        bound = 1 / np.sqrt(w[0].size)
        assert np.max(np.abs(w)) <= bound and np.max(np.abs(b)) <= bound and np.all(b != 0)
    kaiming = ConvNet(plan=SMALL_PLAN, dtype="float64", seed=3, init="kaiming")
    assert np.max(np.abs(kaiming.layers[0].params["weight"])) > 1 / np.sqrt(27)
    twin = [m for m in torch_copy(net) if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer, m in zip(layers, twin, strict=True):
        np.testing.assert_array_equal(m.weight.detach().numpy(), np.asarray(layer.params["weight"]))
        np.testing.assert_array_equal(m.bias.detach().numpy(), np.asarray(layer.params["bias"]).reshape(-1))


def write_batches(folder, rng, n=1010):
    folder.mkdir()
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n if name != "test_batch" else 30, 3072), dtype=np.uint8)
        with (folder / name).open("wb") as fh:
            pickle.dump({b"data": data, b"labels": [int(v) for v in np.arange(len(data)) % 10]}, fh, protocol=2)
        images[name] = data
    return images


def test_convnet_data_recipe_subtracts_the_training_mean_image(tmp_path):
    """``recipe="convnet"``: all training images train, none are held out; every image, training and test,
    is its pixel values 0..255 minus the mean over the training images of each pixel and channel."""
    images = write_batches(tmp_path / "cifar-10-batches-py", np.random.default_rng(5), n=200)
    assert ConvNet.DATA_RECIPE == "convnet" and RECIPES["convnet"].n_validation == 0
    d = load(tmp_path, download=False, recipe=ConvNet.DATA_RECIPE)
    train = np.concatenate([images[f"data_batch_{i}"] for i in range(1, 6)]).astype(np.float64)
    mean = train.mean(axis=0)
    assert (len(d.train.y), len(d.validation.y), len(d.test.y)) == (1000, 0, 30)
    assert d.validation.x.shape == (0, 3072) and d.train.x.dtype == d.test.x.dtype == np.float32
    # to float32's resolution at 255
    assert np.max(np.abs(d.train.x - (train - mean))) <= 3e-5
    assert np.max(np.abs(d.test.x - (images["test_batch"] - mean))) <= 3e-5
    assert np.max(np.abs(d.train.x.mean(axis=0, dtype=np.float64))) <= 3e-5
    with pytest.raises(ValueError, match="unknown data recipe 'vgg'"):
        load(tmp_path, download=False, recipe="vgg")


def test_mlp_data_recipe_is_the_default_and_unchanged(tmp_path):
    """Without a recipe, as the MLP loads it: per channel (x/255 − MEAN)/STD, the last 5,000 held out."""
    images = write_batches(tmp_path / "cifar-10-batches-py", np.random.default_rng(6))
    d = load(tmp_path, download=False)
    assert (len(d.train.y), len(d.validation.y), len(d.test.y)) == (50, 5000, 30)
    first = images["data_batch_1"][0].reshape(3, 1024) / 255
    expected = (first - np.array([0.491, 0.482, 0.447])[:, None]) / np.array([0.247, 0.243, 0.262])[:, None]
    np.testing.assert_allclose(d.train.x[0], expected.reshape(-1), rtol=0, atol=1e-5)
