"""The NumPy kernels' helpers (derive/helpers/numpy_helpers.py) against torch, float64: convolutions in every
im2col layout, window maxima and arg-maxima, and the arg-max scatter on general strided grids."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from derive.helpers import numpy_helpers as H

RTOL = 1e-10
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


@pytest.fixture(params=["auto", "rows", "cols", "nlast", "scatter", "shift"])
def strategy(request):
    """Run a test under each im2col layout (auto = the shape rule)."""
    H.STRATEGY = None if request.param == "auto" else request.param
    yield request.param
    H.STRATEGY = None


def close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    err = float(np.abs(a - b).max()) if b.size else 0.0
    assert err <= RTOL * scale, f"max error {err} (scale {scale})"


def odd_view(a, rng, kind):
    """The same values as a, as a view with unusual strides: 'c' contiguous, 'last' channels-last,
    'rev' reversed spatial axes (negative strides) of a reversed copy, 'gap' a slice of a bigger array."""
    if kind == "c":
        return a
    if kind == "last":
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 1, -1)), -1, 1)
    if kind == "rev":
        sp = tuple(range(2, a.ndim))
        return np.ascontiguousarray(np.flip(a, sp))[(slice(None),) * 2 + (slice(None, None, -1),) * len(sp)]
    big = np.zeros(tuple(2 * n + 1 for n in a.shape))
    big[tuple(slice(1, None, 2) for _ in a.shape)] = a
    return big[tuple(slice(1, None, 2) for _ in a.shape)]


def ref_correlate(x, w, stride, dilation, offset, denom, out, need_grads=False):
    """torch reference for correlate's definition: zero-insert x by denom, pad (offset < 0) or crop
    (offset > 0) with F.pad, then a plain conv with stride and dilation."""
    d = len(out)
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=need_grads)
    wt = torch.tensor(np.ascontiguousarray(w), requires_grad=need_grads)
    xd = xt
    for a, q in enumerate(denom):
        if q != 1:  # x_dil[t] = x[t / q] where q | t
            n = xd.shape[2 + a]
            shape = list(xd.shape)
            shape[2 + a] = (n - 1) * q + 1
            z = xd.new_zeros(shape)
            idx = [slice(None)] * xd.ndim
            idx[2 + a] = slice(None, None, q)
            z[tuple(idx)] = xd
            xd = z
    pads = []
    for a in reversed(range(d)):  # F.pad lists the last axis first
        need = stride[a] * (out[a] - 1) + dilation[a] * (w.shape[2 + a] - 1) + 1
        n = xd.shape[2 + a]
        pads += [-offset[a], offset[a] + need - n]
    xd = F.pad(xd, pads)
    y = CONV[d](xd, wt, stride=stride, dilation=dilation)
    return (y, xt, wt) if need_grads else y.detach().numpy()


CASES = [  # (d, N, Ci, Co, spatial, K, stride, dilation, offset, denom)
    (2, 2, 3, 4, (7, 6), (3, 3), (1, 1), (1, 1), (-1, -1), (1, 1)),
    (2, 3, 5, 2, (9, 8), (3, 2), (2, 3), (1, 1), (0, -2), (1, 1)),
    (2, 1, 4, 3, (11, 9), (3, 3), (1, 2), (2, 1), (-2, 0), (1, 1)),
    (2, 2, 3, 5, (8, 7), (2, 3), (3, 1), (2, 2), (1, 2), (1, 1)),  # crop
    (2, 2, 70, 3, (5, 5), (3, 3), (1, 1), (1, 1), (-1, -1), (1, 1)),  # many channels: rows layout
    (2, 2, 3, 4, (5, 7), (3, 3), (1, 1), (1, 1), (-2, -1), (2, 2)),  # transposed conv, stride 2
    (2, 2, 3, 4, (5, 4), (4, 3), (1, 1), (1, 1), (-3, -1), (2, 3)),  # denom 2 and 3
    (2, 1, 2, 3, (4, 5), (3, 3), (1, 2), (1, 3), (-1, 0), (2, 2)),  # denom with stride, dilation
    (1, 3, 4, 5, (13,), (3,), (2,), (1,), (-1,), (1,)),
    (1, 2, 3, 2, (10,), (5,), (1,), (2,), (-4,), (1,)),
    (1, 2, 3, 2, (6,), (3,), (1,), (1,), (-2,), (2,)),
    (3, 2, 3, 4, (5, 6, 4), (3, 3, 3), (1, 1, 1), (1, 1, 1), (-1, -1, -1), (1, 1, 1)),
    (3, 1, 2, 3, (7, 5, 6), (3, 2, 3), (2, 1, 3), (1, 2, 1), (0, -1, 1), (1, 1, 1)),
    (3, 1, 2, 3, (3, 4, 3), (3, 3, 3), (1, 1, 1), (1, 1, 1), (-2, -1, -2), (2, 1, 2)),
    (2, 2, 3, 4, (6, 6), (1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),  # 1x1 kernel
    (2, 2, 3, 4, (3, 3), (3, 3), (1, 1), (1, 1), (-4, -4), (1, 1)),  # windows wholly in the padding
]


def out_extent(n, k, s, dl, off, q):
    """Output extent for an x of extent n (zero-inserted to (n-1)*q+1): symmetric padding |off| when
    off < 0, reading up to x's end when off >= 0 (a crop); at least 1."""
    top = (n - 1) * q + max(0, -off)
    return max(1, (top - off - dl * (k - 1)) // s + 1)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["c", "last", "rev", "gap"])
def test_correlate(case, kind, strategy):
    d, N, Ci, Co, sp, K, stride, dil, off, q = case
    rng = np.random.default_rng(hash((case, kind)) % 2**32)
    out = tuple(out_extent(n, k, s, dl, o, qq) for n, k, s, dl, o, qq in zip(sp, K, stride, dil, off, q))
    x = odd_view(rng.standard_normal((N, Ci) + sp), rng, kind)
    if kind == "rev":  # an input gradient's weight view: flipped taps, channel axes swapped
        w = np.flip(rng.standard_normal((Ci, Co) + K).swapaxes(0, 1), tuple(range(2, 2 + d)))
    else:
        w = odd_view(rng.standard_normal((Co, Ci) + K), rng, "rev" if kind == "gap" else kind)
    y = H._correlation(x, w, stride, dil, off, q, out)
    assert y.dtype == np.float64
    close(y, ref_correlate(x, w, stride, dil, off, q, out))


@pytest.mark.parametrize("case", [c for c in CASES if all(v == 1 for v in c[-1])])
@pytest.mark.parametrize("kind", ["c", "last", "rev"])
def test_correlate_weight(case, kind, strategy):
    d, N, Ci, Co, sp, K, stride, dil, off, q = case
    rng = np.random.default_rng(hash((case, kind, 1)) % 2**32)
    out = tuple(out_extent(n, k, s, dl, o, 1) for n, k, s, dl, o in zip(sp, K, stride, dil, off))
    x = odd_view(rng.standard_normal((N, Ci) + sp), rng, kind)
    w = rng.standard_normal((Co, Ci) + K)
    y, xt, wt = ref_correlate(x, w, stride, dil, off, q, out, need_grads=True)
    dy = odd_view(rng.standard_normal(tuple(y.shape)), rng, kind)
    y.backward(torch.tensor(np.ascontiguousarray(dy)))
    dw = H._correlate_weight(x, dy, stride, dil, off, K)
    assert dw.shape == (Co, Ci) + K
    close(dw, wt.grad.numpy())


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (3, 0), (2, 2)])
def test_conv_backward_as_correlations(d, stride, padding, strategy):
    """A convolution's three passes through the helpers, against torch autograd: forward
    (offset = -padding), input gradient as a correlation with the flipped, channel-swapped weight view
    (offset = padding + 1 - K, denom = stride) and weight gradient."""
    rng = np.random.default_rng(d * 100 + stride * 10 + padding)
    K = (3,) * d if padding < 2 else (5,) * d
    sp = (9, 8, 7)[:d]
    x = rng.standard_normal((2, 3) + sp)
    W = rng.standard_normal((4, 3) + K)
    xt, Wt = torch.tensor(x, requires_grad=True), torch.tensor(W, requires_grad=True)
    y = CONV[d](xt, Wt, stride=stride, padding=padding)
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(dy))
    out = tuple(y.shape[2:])
    close(H._correlation(x, W, (stride,) * d, (1,) * d, (-padding,) * d, (1,) * d, out), y.detach().numpy())
    flipped = np.flip(W.swapaxes(0, 1), tuple(range(2, 2 + d)))
    dx = H._correlation(dy, flipped, (1,) * d, (1,) * d, tuple(padding + 1 - k for k in K), (stride,) * d, sp)
    close(dx, xt.grad.numpy())
    close(H._correlate_weight(x, dy, (stride,) * d, (1,) * d, (-padding,) * d, K), Wt.grad.numpy())


def test_conv_transpose2d(strategy):
    """A transposed convolution (stride 2, padding 1, output padding 1) as one correlation."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 5, 6))
    W = rng.standard_normal((4, 3, 3, 3))  # (C_in, C_out, K, K) as torch's transposed conv
    y = F.conv_transpose2d(torch.tensor(x), torch.tensor(W), stride=2, padding=1, output_padding=1).numpy()
    wv = W.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    close(H._correlation(x, wv, (1, 1), (1, 1), (1 + 1 - 3,) * 2, (2, 2), y.shape[2:]), y)


def test_float32_and_workspace_reuse():
    """float32 in, float32 out; consecutive calls of different sizes reuse the scratch buffers."""
    rng = np.random.default_rng(6)
    for n in (3, 9, 5):
        x = rng.standard_normal((2, 4, n, n)).astype(np.float32)
        w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
        y = H._correlation(x, w, (1, 1), (1, 1), (-1, -1), (1, 1), (n, n))
        assert y.dtype == np.float32
        ref = F.conv2d(torch.tensor(x).double(), torch.tensor(w).double(), padding=1).numpy()
        assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()
        dw = H._correlate_weight(x, y, (1, 1), (1, 1), (-1, -1), (3, 3))
        assert dw.dtype == np.float32


# ----------------------------------------------------------------------------------------------------
# windows


def pool_axes(d, stride, padding):
    """_grid_view spec of a max pool: lead (N, C, o_1..o_d), window (k_1..k_d)."""
    nv = 2 + 2 * d
    axes = []
    for a in range(2):
        c = [0] * nv
        c[a] = 1
        axes.append((tuple(c), 0, 1))
    for a in range(d):
        c = [0] * nv
        c[2 + a], c[2 + d + a] = stride, 1
        axes.append((tuple(c), -padding, 1))
    return tuple(axes)


POOLS = [  # (d, shape, kernel, stride, padding)
    (2, (2, 3, 7, 6), 3, 2, 1),
    (2, (2, 3, 8, 8), 2, 2, 0),
    (2, (1, 2, 9, 5), 3, 1, 1),
    (2, (2, 3, 6, 7), 3, 3, 1),
    (2, (2, 3, 2, 2), 3, 2, 1),
    (1, (2, 3, 11), 3, 2, 1),
    (3, (1, 2, 5, 6, 4), 3, 2, 1),
    (3, (1, 2, 4, 4, 4), 2, 1, 0),
]


def pool_out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


@pytest.mark.parametrize("case", POOLS)
@pytest.mark.parametrize("kind", ["c", "last", "rev"])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool(case, kind, ties):
    """window_reduce(max), window_argmax, window_max_argmax and _grid_scatter as a max pool forward
    and backward, against torch's max_pool (values, indices, autograd gradient)."""
    d, shape, k, s, p = case
    rng = np.random.default_rng(hash((case, kind, ties)) % 2**32)
    X = rng.integers(-2, 3, shape).astype(float) if ties else rng.standard_normal(shape)
    X = odd_view(X, rng, kind)
    lead = shape[:2] + tuple(pool_out(n, k, s, p) for n in shape[2:])
    axes = pool_axes(d, s, p)
    view = H._grid_view(X, axes, lead + (k,) * d, fill=-np.inf)
    Xt = torch.tensor(np.ascontiguousarray(X), requires_grad=True)
    yt, it = MAXPOOL[d](Xt, k, s, p, return_indices=True)
    close(H._window_reduce(view, d, "max"), yt.detach().numpy())
    m, best = H._window_max_argmax(view, d)
    close(m, yt.detach().numpy())
    best2 = H._argmax(view, d)
    for b, b2 in zip(best, best2):
        assert np.array_equal(b, b2) and b.shape == lead and b.dtype == np.intp
    # torch's index is the flat input position of the (first) maximiser
    o = np.ogrid[tuple(slice(n) for n in lead)]
    pos = [s * o[2 + a] + best[a] - p for a in range(d)]
    flat = np.ravel_multi_index(pos, shape[2:])
    assert np.array_equal(flat, it.numpy())
    dY = odd_view(rng.standard_normal(lead), rng, kind)
    yt.backward(torch.tensor(np.ascontiguousarray(dY)))
    close(H._grid_scatter(shape, axes, lead, view.shape[len(lead):], best, dY), Xt.grad.numpy())
    # fresh index arrays (not the ones window_max_argmax returned): the general path
    close(H._grid_scatter(shape, axes, lead, view.shape[len(lead):], tuple(np.array(b) for b in best), dY), Xt.grad.numpy())


def test_window_sum_and_dtype():
    """window_reduce(sum) with zero fill is avg_pool * k^2 (count_include_pad); float32 kept."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((2, 3, 7, 8))
    axes = pool_axes(2, 2, 1)
    lead = (2, 3, 4, 4)
    s = H._window_reduce(H._grid_view(X, axes, lead + (3, 3), fill=0), 2, "sum")
    close(s, 9 * F.avg_pool2d(torch.tensor(X), 3, 2, 1, count_include_pad=True).numpy())
    X32 = X.astype(np.float32)
    v = H._grid_view(X32, axes, lead + (3, 3), fill=-np.inf)
    assert H._window_reduce(v, 2, "max").dtype == np.float32
    assert H._window_max_argmax(v, 2)[0].dtype == np.float32


def generic_scatter(shape, axes, lead, best, values):
    """The generated code's generic path: index arithmetic, np.ravel_multi_index and np.bincount."""
    m = np.ogrid[tuple(slice(e) for e in lead)]
    coords = list(m) + list(np.broadcast_arrays(*best))
    index, inside = [], np.ones(lead, bool)
    for (c, d, q), size in zip(axes, shape):
        t = np.broadcast_to(d + sum(x * v for x, v in zip(c, coords) if x), lead)
        inside &= (t % q == 0) & (t >= 0) & (t < size * q)
        index.append(np.where(inside, t // q, 0))
    flat = np.ravel_multi_index([np.where(inside, i, 0) for i in index], shape)
    out = np.bincount(flat.ravel(), weights=np.where(inside, np.broadcast_to(values, lead), 0).ravel(),
                      minlength=math.prod(shape))
    return out.reshape(shape)


def generic_view(a, axes, shape, fill):
    """V[m] = a[e(m)] by index arithmetic, `fill` off the array or between grid points."""
    m = np.indices(shape)
    idx, ok = [], np.ones(shape, bool)
    for (c, d, q), n in zip(axes, a.shape):
        t = d + sum(x * mm for x, mm in zip(c, m))
        ok &= (t % q == 0) & (t >= 0) & (t < n * q)
        idx.append(np.where(ok, t // q, 0))
    return np.where(ok, a[tuple(np.where(ok, i, 0) for i in idx)], fill)


SPECS = [  # (array shape, axes, view shape): dilation (q), reversed axes, all-padding windows
    ((3, 8), (((1, 0, 0), 0, 1), ((0, 2, 1), -1, 1)), (3, 4, 3)),
    ((3, 5), (((1, 0, 0), 0, 1), ((0, 1, 1), -2, 2)), (3, 7, 3)),          # between grid points
    ((2, 6), (((1, 0, 0), 0, 1), ((0, -2, -1), 7, 1)), (2, 4, 3)),        # read backwards
    ((2, 4), (((1, 0, 0), 0, 1), ((0, 3, 1), -6, 1)), (2, 5, 2)),         # windows wholly off x
    ((2, 5, 4), (((1, 0, 0, 0, 0), 0, 1), ((0, 2, 0, 1, 0), -1, 1), ((0, 0, -1, 0, -1), 4, 2)), (2, 3, 4, 2, 2)),
]


@pytest.mark.parametrize("spec", SPECS)
def test_grid_view_and_scatter_general(spec):
    """_grid_view equals an index-arithmetic view; _grid_scatter equals the bincount adjoint, for
    denominators, reversed axes and windows that lie off the array; first-maximiser ties."""
    shape, axes, vshape = spec
    rng = np.random.default_rng(len(shape) * 7 + vshape[1])
    X = rng.integers(-2, 3, shape).astype(float)
    view = H._grid_view(X, axes, vshape, fill=-np.inf)
    assert np.array_equal(view, generic_view(X, axes, vshape, -np.inf))
    n = len(vshape) - len(shape)
    lead = vshape[:-n] if n else vshape
    flat = view.reshape(lead + (-1,)).argmax(axis=-1)
    ref_best = np.unravel_index(flat, vshape[len(lead):])
    m, best = H._window_max_argmax(view, n)
    for b, r in zip(best, ref_best):
        assert np.array_equal(b, r)
    assert np.array_equal(m, view.max(axis=tuple(range(len(lead), len(vshape)))))
    dY = rng.standard_normal(lead)
    close(H._grid_scatter(shape, axes, lead, view.shape[len(lead):], best, dY), generic_scatter(shape, axes, lead, best, dY))


def test_scatter_overlapping_lead_map():
    """A lead axis that the index map ignores (two lead positions, one element): accumulates."""
    shape = (5,)
    axes = (((0, 1, 1), 0, 1),)  # lead (a, b), window (k): index b + k; a ignored
    lead = (3, 3)
    rng = np.random.default_rng(8)
    best = (rng.integers(0, 3, lead),)
    dY = rng.standard_normal(lead)
    close(H._grid_scatter(shape, axes, lead, (3,), best, dY), generic_scatter(shape, axes, lead, best, dY))


def test_argmax_nan_and_inf():
    """NaN is the maximum (the first NaN, as np.argmax); all -inf gives position 0."""
    v = np.array([[[1.0, np.nan, 3.0, np.nan]], [[-np.inf] * 4]])  # lead (2, 1), window 4
    m, (b,) = H._window_max_argmax(v, 1)
    assert np.isnan(m[0, 0]) and b[0, 0] == 1
    assert m[1, 0] == -np.inf and b[1, 0] == 0
    w = np.arange(24.0).reshape(2, 3, 4)[:, :, ::-1]  # descending windows: position 0 wins
    assert np.array_equal(H._argmax(w, 1)[0], np.zeros((2, 3), int))
