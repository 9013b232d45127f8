"""Helpers the generated Torch kernels call: plain Python over torch.

``make derive`` copies this file, unchanged, into every Torch output folder as ``_helpers.py``; a kernel
file imports from it only the names it calls. No derivative is here: these functions move elements,
promote dtypes, call the library's own convolutions and add gradients into the caller's arrays.

- dtypes and updates: ``_floats``, ``_accumulate`` (``into``), ``_product`` (``addmm_``: beta = 1);
- strided windows: ``_grid_view``, ``_argmax``, ``_at_max``, ``_grid_scatter`` (the adjoint of a window
  read at its arg-max), ``_scatter_add`` and ``_mesh`` (any other route);
- convolutions, each a derived formula the lowering recognised, spelled as the native kernel autograd
  itself runs: ``_correlate`` (``conv1d/2d/3d``), ``_correlate_transposed`` (``conv_transpose1d/2d/3d``),
  ``_correlate_weight`` (``convolution_backward``'s weight gradient); shapes those kernels do not take
  (asymmetric padding, crops, reads between grid points) are padded or cropped first.
"""
import math

import torch

_F = torch.nn.functional


def _zeros(like, shape):
    """Zeros of ``shape`` in ``like``'s floating dtype, on its device: an upstream gradient the caller omitted."""
    dtype = like.dtype if like.dtype.is_floating_point else torch.get_default_dtype()
    return torch.zeros(shape, dtype=dtype, device=like.device)


def _floats(*arrays):
    """The tensors in their common floating dtype (the default float for integers), as b + X @ W.T would promote."""
    t = arrays[0].dtype
    if t.is_floating_point and all(a.dtype == t for a in arrays):
        return arrays
    for a in arrays[1:]:
        t = torch.promote_types(t, a.dtype)
    t = t if t.is_floating_point else torch.get_default_dtype()
    return tuple(a if a.dtype == t else a.to(t) for a in arrays)


def _accumulate(into, grads):
    """array += alpha * gradient for each name: (array, alpha) in `into`; the gradients in order, None where added."""
    for name, (out, alpha) in into.items():
        g = grads.get(name)
        if g is None:
            raise ValueError(f"into: {name!r} is not a gradient computed here "
                             f"({', '.join(n for n, v in grads.items() if v is not None)}; a need_ flag off?)")
        if not torch.is_tensor(out) or tuple(out.shape) != tuple(g.shape):
            raise ValueError(f"into: {name} has shape {tuple(g.shape)}, the array given {getattr(out, 'shape', out)}")
        if out.dtype != g.dtype or out.device != g.device:
            raise ValueError(f"into: {name} is {g.dtype} on {g.device}, the array given {out.dtype} on {out.device}")
        if out.requires_grad and torch.is_grad_enabled():
            raise ValueError(f"into: the array given for {name} requires grad: update it under torch.no_grad()")

    def span(t):  # the bytes of t's storage: views of one buffer overlap whatever their offsets
        s = t.untyped_storage()
        return s.data_ptr(), s.data_ptr() + s.nbytes()

    spans = [span(out) for out, _ in into.values()]
    shared = lambda x: any(lo < span(x)[1] and span(x)[0] < hi for lo, hi in spans)
    if any(shared(x) for g in grads.values() if hasattr(g, "add_into") for x in (g.a, g.b)):
        grads = {n: g.value() if hasattr(g, "add_into") else g for n, g in grads.items()}
    # A gradient that is a view of an array written here (dW = X, into dX: X) is copied before any write.
    grads = {n: g.clone() if torch.is_tensor(g) and shared(g) else g for n, g in grads.items()}
    for name, (out, alpha) in into.items():
        g = grads[name]
        if hasattr(g, "add_into"):
            g.add_into(out, float(alpha))
        else:
            out.add_(g, alpha=float(alpha))
    return tuple(None if n in into else g for n, g in grads.items())


class _Product:
    """a @ b, not formed yet: it goes into an array the caller gave."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.shape, self.dtype, self.device = tuple(a.shape[:-1] + b.shape[1:]), a.dtype, a.device

    def value(self):
        return self.a @ self.b

    def add_into(self, out, alpha):
        """out += alpha * a @ b in one BLAS call (beta = 1)."""
        if self.b.dim() == 1:
            out.addmv_(self.a, self.b, alpha=alpha)
        else:
            out.addmm_(self.a, self.b, alpha=alpha)


def _product(into, name, a, b):
    """a @ b, or deferred when the gradient `name` goes into an array the caller gave."""
    return _Product(a, b) if into and name in into else a @ b


def _grid_view(a, axes, shape, fill=0.0):
    """V[m...] = a[e_0(m), e_1(m), ...], e_k = (sum_m c_km m + d_k)/q_k; `fill` off the grid. axes: ((c_k, d_k, q_k), ...)."""
    spec = []
    for k, (c, d, q) in enumerate(axes):
        if q != 1:  # dilate: a[t/q] where q divides t, `fill` between
            big = a.new_full(a.shape[:k] + ((a.shape[k] - 1) * q + 1,) + a.shape[k + 1:], fill)
            big[(slice(None),) * k + (slice(None, None, q),)] = a
            a = big
        if any(x < 0 for x in c):  # read backwards: flip the axis
            a = a.flip(k)
            c, d = tuple(-x for x in c), a.shape[k] - 1 - d
        spec.append((c, d))
    low = [d for c, d in spec]
    high = [d + sum(x * (n - 1) for x, n in zip(c, shape)) for c, d in spec]
    pads = [(max(0, -lo), max(0, hi - (n - 1))) for lo, hi, n in zip(low, high, a.shape)]
    if any(p != (0, 0) for p in pads):
        a = torch.nn.functional.pad(a, [x for p in reversed(pads) for x in p], value=fill)
    a = a.contiguous()
    offset = a.storage_offset() + sum((d + p[0]) * s for (c, d), p, s in zip(spec, pads, a.stride()))
    strides = tuple(sum(c[m] * s for (c, d), s in zip(spec, a.stride())) for m in range(len(shape)))
    return a.as_strided(tuple(shape), strides, offset)


def _at_max(v, f, n):
    """v at the first maximum of f over their last n axes (ties: first in row-major order)."""
    lead = tuple(f.shape[:-n])
    flat = f.reshape(lead + (-1,)).argmax(dim=-1)
    return torch.gather(v.expand(f.shape).reshape(lead + (-1,)), -1, flat[..., None])[..., 0]


def _scatter_add(shape, index, values):
    """A tensor of `shape`, zero but for out[index] += values (repeated positions accumulate; a position
    off the array, the arg-max of a window that is all padding, adds nothing)."""
    *index, values = torch.broadcast_tensors(*index, values)
    inside = torch.ones_like(index[0], dtype=torch.bool)
    for i, n in zip(index, shape):
        inside &= (i >= 0) & (i < n)
    values = torch.where(inside, values, 0)
    flat = torch.zeros_like(index[0])
    for i, n in zip(index, shape):
        flat = flat * n + torch.where(inside, i, 0)
    out = values.new_zeros(math.prod(shape))
    out.index_add_(0, flat.reshape(-1), values.reshape(-1))
    return out.reshape(shape)


def _labels(a, n, where):
    """An index array (labels, token ids) as int64 indices, if it holds integers in 0..n-1; else one ValueError
    line."""
    if a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool:
        raise ValueError(f"{where} must hold integers (labels, indices), got {a.dtype}")
    if a.is_cuda:
        # No host synchronisation on a GPU (a recorded training step never waits for one): a device-side assert,
        # where PyTorch's own cross_entropy and gather check their indices; none inside a CUDA-graph recording.
        if not torch.cuda.is_current_stream_capturing():
            torch._assert_async(((a >= 0) & (a < n)).all(), f"{where} holds a value outside 0..{n - 1}")
        return a.long()
    outside = (a < 0) | (a >= n)
    if outside.any():
        raise ValueError(f"{where} holds {a[outside].flatten()[0].item()}, outside 0..{n - 1}")
    return a.long()


def _mesh(shape, like):
    """Broadcastable index tensors 0..n-1, one per axis of `shape`."""
    return [torch.arange(n, device=like.device).reshape((1,) * k + (n,) + (1,) * (len(shape) - k - 1))
            for k, n in enumerate(shape)]


def _conv(d, transposed=False):
    if transposed:
        return (_F.conv_transpose1d, _F.conv_transpose2d, _F.conv_transpose3d)[d - 1]
    return (_F.conv1d, _F.conv2d, _F.conv3d)[d - 1]


def _span(x, first, last):
    """x[:, :, first_a : last_a + 1 ...] over its spatial axes, zero where that runs off x: a view where it lies
    inside x, else a padded copy (or zeros, where it misses x)."""
    sizes = x.shape[2:]
    shape = tuple(x.shape[:2]) + tuple(l - f + 1 for f, l in zip(first, last))
    if any(l < 0 or f > n - 1 for f, l, n in zip(first, last, sizes)):
        return x.new_zeros(shape)
    part = x[(slice(None),) * 2 + tuple(slice(max(f, 0), min(l, n - 1) + 1) for f, l, n in zip(first, last, sizes))]
    pads = [p for f, l, n in reversed(list(zip(first, last, sizes))) for p in (max(-f, 0), max(l - (n - 1), 0))]
    return _F.pad(part, pads) if any(pads) else part


def _correlate(x, w, bias, stride, dilation, offset, denom, out):
    """y[n, co, o...] = sum_{ci, k...} x[n, ci, (stride*o + dilation*k + offset)/denom ...] w[co, ci, k...] (+ bias[co]),
    x zero off its grid: conv1d/2d/3d, with the padding in the call where it is symmetric (no padded copy)."""
    d = len(out)
    if 0 in out:  # no output position: nothing to read
        return x.new_zeros((x.shape[0], w.shape[0], *out))
    for a, q in enumerate(denom):
        if q != 1:  # reads between grid points are zero: dilate
            big = x.new_zeros(x.shape[:2 + a] + ((x.shape[2 + a] - 1) * q + 1,) + x.shape[3 + a:])
            big[(slice(None),) * (2 + a) + (slice(None, None, q),)] = x
            x = big
    K = w.shape[2:]
    pad = [-c for c in offset]
    natural = [(n + 2 * p - dl * (k - 1) - 1) // s + 1 for n, p, dl, k, s in zip(x.shape[2:], pad, dilation, K, stride)]
    if all(p >= 0 for p in pad) and all(m >= o for m, o in zip(natural, out)):
        y = _conv(d)(x, w, bias, stride=tuple(stride), padding=tuple(pad), dilation=tuple(dilation))
        return y if list(natural) == list(out) else y[(slice(None),) * 2 + tuple(slice(0, o) for o in out)]
    # exactly the positions read, zero off x: the first read is then x[0] and the last x[-1]
    last = [s * (o - 1) + dl * (k - 1) + c for s, o, dl, k, c in zip(stride, out, dilation, K, offset)]
    return _conv(d)(_span(x, offset, last), w, bias, stride=tuple(stride), dilation=tuple(dilation))


def _correlate_transposed(y, w, stride, dilation, padding, out):
    """dx[n, ci, u...] = sum_{co, h, k: stride*h + dilation*k - padding = u} y[n, co, h...] w[co, ci, k...]:
    conv_transpose1d/2d/3d where its output_padding reaches the extents ``out``, else the correlation of y
    read between its grid points with the weight flipped and its channels swapped."""
    d = len(out)
    K = w.shape[2:]
    natural = [(h - 1) * s - 2 * p + dl * (k - 1) + 1 for h, s, p, dl, k in zip(y.shape[2:], stride, padding, dilation, K)]
    extra = [o - n for o, n in zip(out, natural)]
    if all(p >= 0 for p in padding) and all(0 <= e < max(s, dl) for e, s, dl in zip(extra, stride, dilation)):
        return _conv(d, transposed=True)(y, w, None, stride=tuple(stride), padding=tuple(padding),
                                         output_padding=tuple(extra), dilation=tuple(dilation))
    flipped = w.transpose(0, 1).flip(tuple(range(2, 2 + d)))
    offset = [p - dl * (k - 1) for p, dl, k in zip(padding, dilation, K)]
    return _correlate(y, flipped, None, (1,) * d, dilation, offset, stride, out)


def _correlate_weight(x, dy, stride, dilation, offset, window):
    """dw[co, ci, k...] = sum_{n, o...} x[n, ci, stride*o + dilation*k + offset ...] dy[n, co, o...], x zero off its
    range: the weight gradient of convolution_backward (what autograd runs for conv1d/2d/3d)."""
    d = len(window)
    out = dy.shape[2:]
    pad = [-c for c in offset]
    natural = [(n + 2 * p - dl * (k - 1) - 1) // s + 1 for n, p, dl, k, s in zip(x.shape[2:], pad, dilation, window, stride)]
    if not (all(p >= 0 for p in pad) and list(natural) == list(out)):
        # exactly the positions read, zero off x: the first read is then x[0] and the last x[-1]
        last = [s * (o - 1) + dl * (k - 1) + c for s, o, dl, k, c in zip(stride, out, dilation, window, offset)]
        x, pad = _span(x, offset, last), [0] * d
    # Only the weight's shape is read; an uninitialised dense tensor of it keeps the library's fast path (an
    # expanded one-element tensor measured 10 % slower: 64.6 against 60.6 ms for the small VGG's weight gradients).
    weight = dy.new_empty((dy.shape[1], x.shape[1], *window))
    return torch.ops.aten.convolution_backward(dy, x, weight, None, list(stride), pad, list(dilation), False,
                                               [0] * d, 1, (False, True, False))[1]


def _argmax(v, n):
    """Index tensors of the first maximum over the last n axes of v (ties: first in row-major order)."""
    return _unravel(v.reshape(v.shape[:-n] + (-1,)).argmax(dim=-1), v.shape[-n:])


def _unravel(flat, window):
    """Row-major positions in a window as one index tensor per window axis."""
    index = []
    for size in reversed(tuple(window)):
        index.append(flat % size)
        flat = flat // size
    return index[::-1]


def _grid_scatter(shape, axes, lead, window, best, values):
    """The adjoint of reading a _grid_view at the arg-max: a tensor of `shape`, zero but for
    out[e(m, best(m))] += values[m] over the lead positions m, e the view's index map (axes: _grid_view's spec
    over the lead axes then the window axes). Positions off the tensor or between grid points add nothing.
    One index_add_ into a zero buffer that holds every position the view reaches, then a crop."""
    lead, window = tuple(int(v) for v in lead), tuple(int(v) for v in window)
    full, L = lead + window, len(lead)
    lo, hi = [], []
    for (c, d, q), size in zip(axes, shape):
        lo.append(min(0, d + sum(min(0, x * (e - 1)) for x, e in zip(c, full))))
        hi.append(max((size - 1) * q, d + sum(max(0, x * (e - 1)) for x, e in zip(c, full))))
    buf = values.new_zeros(tuple(h - l + 1 for l, h in zip(lo, hi)))
    crop = tuple(slice(-l, -l + (size - 1) * q + 1, q) for l, (c, d, q), size in zip(lo, axes, shape))
    if buf.numel() == 0 or 0 in lead:
        return buf[crop]
    el = buf.stride()
    positions = torch.cartesian_prod(*[torch.arange(w) for w in window]).reshape(-1, len(window))
    table = torch.tensor([sum((d + sum(c[L + j] * int(k) for j, k in enumerate(pos)) - l) * s
                              for (c, d, q), l, s in zip(axes, lo, el)) for pos in positions.tolist()],
                         device=buf.device)
    flat = torch.zeros((), dtype=torch.long, device=buf.device)
    for b, w in zip(best, window):  # the window position's number, row-major
        flat = flat * w + b
    index = table[flat.expand(lead)]
    for m in range(L):  # plus each lead position's own offset
        step = sum(c[m] * s for (c, d, q), s in zip(axes, el))
        index = index + (torch.arange(lead[m], device=buf.device) * step).reshape((-1,) + (1,) * (L - m - 1))
    buf.view(-1).index_add_(0, index.reshape(-1), values.expand(lead).reshape(-1))
    return buf[crop]


def _pool_axes(stride, dilation, offset):
    """The _grid_view spec of a pool's read x[n, c, stride*o + dilation*k + offset] over the axes (n, c, o..., k...)."""
    d = len(stride)
    unit = lambda m: tuple(int(m == j) for j in range(2 + 2 * d))
    axes = [(unit(0), 0, 1), (unit(1), 0, 1)]
    for a in range(d):
        c = [0] * (2 + 2 * d)
        c[2 + a], c[2 + d + a] = int(stride[a]), int(dilation[a])
        axes.append((tuple(c), int(offset[a]), 1))
    return tuple(axes)


def _native_pool(x, stride, dilation, offset, window, out) -> bool:
    """Whether max_pool1d/2d/3d computes this pool: symmetric padding of at most half the window (what the library
    accepts), no dilation where there is padding (a dilated window can then lie wholly in the padding, and the
    library's arg-max points off the array), and the extents its floor formula gives."""
    pad = [-c for c in offset]
    natural = [(n + 2 * p - dl * (k - 1) - 1) // s + 1 for n, p, dl, k, s in zip(x.shape[2:], pad, dilation, window, stride)]
    return len(window) <= 3 and list(natural) == list(out) and all(
        0 <= p <= k // 2 and (p == 0 or dl == 1) for p, dl, k in zip(pad, dilation, window))


def _max_pool(x, stride, dilation, offset, window, out, argmax=False):
    """y[n, c, o...] = max_k x[n, c, stride*o + dilation*k + offset ...], reads off x never winning: max_pool1d/2d/3d
    where it computes that, else the maximum over a strided view. With argmax, (y, the first arg-max): the
    library's own indices, or (off its path) the position in the window, row-major."""
    d = len(window)
    if _native_pool(x, stride, dilation, offset, window, out):
        pool = (_F.max_pool1d, _F.max_pool2d, _F.max_pool3d)[d - 1]
        return pool(x, tuple(window), tuple(stride), tuple(-c for c in offset), tuple(dilation), return_indices=argmax)
    view = _grid_view(x, _pool_axes(stride, dilation, offset), tuple(x.shape[:2]) + tuple(out) + tuple(window),
                      -math.inf)
    if argmax:
        flat = view.reshape(view.shape[:-d] + (-1,)).argmax(dim=-1)
        return torch.gather(view.reshape(view.shape[:-d] + (-1,)), -1, flat[..., None])[..., 0], flat
    return view.amax(dim=tuple(range(-d, 0)))


def _max_pool_scatter(x, values, stride, dilation, offset, window, argmax=None):
    """The gradient of _max_pool: values[n, c, o...] added at x's position of each window's first arg-max (PyTorch's
    ties; the one _max_pool returned, else searched for again): the pool's own backward kernel where the library
    pools this window, else a scatter."""
    d, out = len(window), tuple(values.shape[2:])
    if _native_pool(x, stride, dilation, offset, window, out):
        pad = tuple(-c for c in offset)
        if argmax is None:
            pool = (_F.max_pool1d, _F.max_pool2d, _F.max_pool3d)[d - 1]
            _, argmax = pool(x, tuple(window), tuple(stride), pad, tuple(dilation), return_indices=True)
        if d == 1:  # pooled as a 2-D window of height 1
            x, values, argmax = x.unsqueeze(2), values.unsqueeze(2), argmax.unsqueeze(2)
            window, stride, pad, dilation = (1, *window), (1, *stride), (0, *pad), (1, *dilation)
        backward = torch.ops.aten.max_pool3d_with_indices_backward if d == 3 else \
            torch.ops.aten.max_pool2d_with_indices_backward
        dx = backward(values, x, list(window), list(stride), list(pad), list(dilation), False, argmax)
        return dx.squeeze(2) if d == 1 else dx
    axes, lead = _pool_axes(stride, dilation, offset), tuple(values.shape)
    if argmax is None:
        best = _argmax(_grid_view(x, axes, lead + tuple(window), -math.inf), d)
    else:  # the window position, row-major
        best = _unravel(argmax, window)
    return _grid_scatter(tuple(x.shape), axes, lead, window, best, values)
