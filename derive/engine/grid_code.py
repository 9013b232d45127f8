"""Indexing machinery that printed kernels call for reads at index expressions.

No mathematics lives here: these functions only move elements. A read
``T[e_0, e_1, …]`` at index expressions ``e_k = (Σ_m c_km m + d_k)/q_k`` is a
strided view (``_grid_view``): the axes with a denominator are dilated (zeros
between the points), axes read backwards are flipped, the array is padded so
every read lands inside it, and ``as_strided`` lays the view's axes over it.
A max over a window reads its padding as −∞, so padding never wins.
``_argmax`` and ``_scatter_add`` route a gradient to the arg-max of a window.

Each backend's functions are source text, copied into the generated files that
use them, so a generated file stays self-contained. Printers name them in
``ArrayPrinter.helpers``; the template writes each one once.
"""

NUMPY = {
    "_grid_view": '''
def _grid_view(a, axes, shape, fill=0):
    """V[m...] = a[e_0(m), e_1(m), ...], e_k = (sum_m c_km m + d_k)/q_k; `fill` off the grid. axes: ((c_k, d_k, q_k), ...)."""
    a = np.asarray(a)
    spec = []
    for k, (c, d, q) in enumerate(axes):
        if q != 1:  # dilate: a[t/q] where q divides t, `fill` between
            big = np.full(a.shape[:k] + ((a.shape[k] - 1) * q + 1,) + a.shape[k + 1:], fill, dtype=a.dtype)
            big[(slice(None),) * k + (slice(None, None, q),)] = a
            a = big
        if any(x < 0 for x in c):  # read backwards: flip the axis
            a = np.flip(a, axis=k)
            c, d = tuple(-x for x in c), a.shape[k] - 1 - d
        spec.append((c, d))
    low = [d for c, d in spec]
    high = [d + sum(x * (n - 1) for x, n in zip(c, shape)) for c, d in spec]
    pads = [(max(0, -lo), max(0, hi - (n - 1))) for lo, hi, n in zip(low, high, a.shape)]
    if any(p != (0, 0) for p in pads):
        a = np.pad(a, pads, constant_values=fill)
    start = tuple(slice(d + p[0], None) for (c, d), p in zip(spec, pads))
    a = a[start]
    strides = tuple(sum(c[m] * s for (c, d), s in zip(spec, a.strides)) for m in range(len(shape)))
    return np.lib.stride_tricks.as_strided(a, shape=tuple(shape), strides=strides, writeable=False)
''',
    "_argmax": '''
def _argmax(v, n):
    """Index arrays of the first maximum over the last n axes of v (ties: first in row-major order)."""
    flat = v.reshape(v.shape[:-n] + (-1,)).argmax(axis=-1)
    return np.unravel_index(flat, v.shape[-n:])
''',
    "_at_max": '''
def _at_max(v, f, n):
    """v at the first maximum of f over their last n axes (ties: first in row-major order)."""
    lead = f.shape[:-n]
    flat = f.reshape(lead + (-1,)).argmax(axis=-1)
    return np.take_along_axis(np.broadcast_to(v, f.shape).reshape(lead + (-1,)), flat[..., None], axis=-1)[..., 0]
''',
    "_scatter_add": '''
def _scatter_add(shape, index, values):
    """An array of `shape`, zero but for out[index] += values (repeated positions accumulate; a position
    off the array, the arg-max of a window that is all padding, adds nothing)."""
    *index, values = np.broadcast_arrays(*index, values)
    inside = np.logical_and.reduce([(i >= 0) & (i < n) for i, n in zip(index, shape)])
    flat = np.ravel_multi_index([np.where(inside, i, 0) for i in index], shape)
    out = np.bincount(flat.ravel(), weights=np.where(inside, values, 0).ravel(), minlength=int(np.prod(shape)))
    return out.reshape(shape).astype(values.dtype, copy=False)
''',
    "_mesh": '''
def _mesh(shape, like):
    """Broadcastable index arrays 0..n-1, one per axis of `shape`."""
    return np.ogrid[tuple(slice(n) for n in shape)]
''',
}

TORCH = {
    "_grid_view": '''
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
''',
    "_argmax": '''
def _argmax(v, n):
    """Index tensors of the first maximum over the last n axes of v (ties: first in row-major order)."""
    flat = v.reshape(v.shape[:-n] + (-1,)).argmax(dim=-1)
    index = []
    for size in reversed(v.shape[-n:]):
        index.append(flat % size)
        flat = flat // size
    return index[::-1]
''',
    "_at_max": '''
def _at_max(v, f, n):
    """v at the first maximum of f over their last n axes (ties: first in row-major order)."""
    lead = tuple(f.shape[:-n])
    flat = f.reshape(lead + (-1,)).argmax(dim=-1)
    return torch.gather(v.expand(f.shape).reshape(lead + (-1,)), -1, flat[..., None])[..., 0]
''',
    "_scatter_add": '''
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
''',
    "_correlate": '''
def _correlate(x, w, stride, dilation, offset, denom, out):
    """out[n, co, o...] = sum_{ci, k...} x[n, ci, (stride*o + dilation*k + offset)/denom] w[co, ci, k...]; x zero off its grid."""
    d = len(out)
    for a, q in enumerate(denom):
        if q != 1:  # reads between grid points are zero: dilate
            big = x.new_zeros(x.shape[:2 + a] + ((x.shape[2 + a] - 1) * q + 1,) + x.shape[3 + a:])
            big[(slice(None),) * (2 + a) + (slice(None, None, q),)] = x
            x = big
    pads = []
    for a in reversed(range(d)):  # pad (or crop) so the first read is x[0] and the last is x[-1]
        last = stride[a] * (out[a] - 1) + dilation[a] * (w.shape[2 + a] - 1) + offset[a]
        pads += [-offset[a], last - (x.shape[2 + a] - 1)]
    if any(pads):
        x = torch.nn.functional.pad(x, pads)
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[d - 1]
    return conv(x, w, stride=tuple(stride), dilation=tuple(dilation))
''',
    "_mesh": '''
def _mesh(shape, like):
    """Broadcastable index tensors 0..n-1, one per axis of `shape`."""
    return [torch.arange(n, device=like.device).reshape((1,) * k + (n,) + (1,) * (len(shape) - k - 1))
            for k, n in enumerate(shape)]
''',
}
