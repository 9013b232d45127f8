"""Helpers the generated NumPy kernels call: plain Python over NumPy (and its bundled OpenBLAS).

``make derive`` copies this file, unchanged, into every NumPy output folder as ``_helpers.py``; a
kernel file imports from it only the names it calls. No derivative is here: these functions move
elements, promote dtypes, form matrix products and add gradients into the caller's arrays.

- dtypes and updates: ``_floats`` (every kernel computes in its arrays' promoted floating dtype),
  ``_accumulate`` (``into``: gradients added into caller arrays, every target checked before any write),
  ``_product`` (a gradient that is one matrix product, added by BLAS with beta = 1), ``_matmul``,
  ``_putmask``;
- strided windows: ``_grid_view`` (a read at index expressions as a strided view), ``_window_reduce``,
  ``_argmax`` / ``_window_max_argmax``, ``_at_max``, ``_grid_scatter`` (the adjoint of a window read at
  its arg-max), ``_scatter_add`` and ``_mesh`` (any other route);
- convolutions: ``_correlate`` (forward), ``_correlate_transposed`` (input gradient),
  ``_correlate_weight`` (weight gradient): one im2col copy and one BLAS product each, in the layout
  measured fastest for the shape (``_layout``).

Timings quoted in comments were measured on the project's 2-core AVX-512 CPU, NumPy 2.4, float32,
batch 32, the small VGG's layer shapes; they are the reasons for the choices. Results may be views
whose memory is not C-ordered (channels-last, mostly).
"""
import itertools
import math
import threading
import weakref

import numpy as np

_as_strided = np.lib.stride_tricks.as_strided

# The layout correlate / _correlate_weight use (see _layout): None = chosen by shape, or forced to
# "rows", "cols", "nlast", "scatter" or "shift" (tests/test_helpers.py runs every one).
STRATEGY = None

_BLOCK = 1 << 19  # bytes of source a transposing copy reads per slab (fits in L2 with room to spare)


# ----------------------------------------------------------------------------------------------------
# Scratch memory and copies

_scratch = threading.local()


def _workspace(role, shape, dtype):
    """An uninitialised array for a temporary that never leaves this module (the im2col matrix, the
    padded input), kept per thread and role between calls. Measured: a fresh 37.6 MB array (the
    64->128@16 input gradient's im2col) comes from mmap and the kernel zeroes its pages on first touch:
    copying into it took 4.6 ms against 2.55 ms into a reused one (glibc reuses freed blocks only
    below its 32 MB mmap threshold)."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    pool = _scratch.__dict__.setdefault("pool", {})
    buf = pool.get(role)
    if buf is None or buf.nbytes < nbytes:
        buf = pool[role] = np.empty(max(nbytes, 64), np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)



def _copy(dst, src):
    """np.copyto(dst, src), in slabs along the axis src strides farthest when that is not dst's outer
    axis: NumPy walks in dst's order, so a transposing copy otherwise streams all of src once per inner
    position. Measured, a flipped 512x512x3x3 weight into (kh, kw, o, c): 3.2 ms whole, 1.0 ms in slabs."""
    nbytes = src.size * src.itemsize
    axes = [a for a in range(src.ndim) if src.shape[a] > 1]
    if nbytes <= 4 * _BLOCK or not axes:
        np.copyto(dst, src)
        return
    far = max(axes, key=lambda a: abs(src.strides[a]))
    if far == max(axes, key=lambda a: abs(dst.strides[a])):
        np.copyto(dst, src)  # both walk that axis outermost: already a streaming copy
        return
    step = max(1, _BLOCK // max(1, abs(src.strides[far])))
    for i in range(0, src.shape[far], step):
        part = (slice(None),) * far + (slice(i, i + step),)
        np.copyto(dst[part], src[part])


def _matrix(a, rows, cols, copy=True):
    """a's axes `rows` (flattened in that order) by its axes `cols`, as a 2-D array BLAS takes without
    NumPy copying it again: a view when the memory already flattens that way (a contiguous weight
    (O, C, kh, kw) as (O, C*kh*kw)), else one slab-blocked copy whose innermost group is the one a
    strides least, so the copy reads a nearly in order (the result is then possibly a transposed view)."""
    t = a.transpose(tuple(rows) + tuple(cols))
    nr = math.prod(a.shape[i] for i in rows)
    nc = math.prod(a.shape[i] for i in cols)
    isz = a.itemsize
    sr, sc = _group_stride(t, range(len(rows))), _group_stride(t, range(len(rows), t.ndim))
    if sr is not False and sc is not False:
        if sc in (isz, None) and (sr is None or (sr > 0 and sr % isz == 0 and sr >= nc * isz)):
            return _as_strided(t, (nr, nc), (sr if sr is not None else nc * isz, isz))
        if sr in (isz, None) and (sc is None or (sc > 0 and sc % isz == 0 and sc >= nr * isz)):
            return _as_strided(t, (nr, nc), (isz, sc if sc is not None else nr * isz))
    if not copy:
        return None
    least = lambda group: min((abs(a.strides[i]) for i in group if a.shape[i] > 1), default=0)
    if least(rows) < least(cols):  # rows innermost: C order over (cols, rows), returned transposed
        tt = a.transpose(tuple(cols) + tuple(rows))
        buf = np.empty(tt.shape, a.dtype)
        _copy(buf, tt)
        return buf.reshape(nc, nr).T
    buf = np.empty(t.shape, a.dtype)
    _copy(buf, t)
    return buf.reshape(nr, nc)


def _group_stride(m, group):
    """The one stride of m's axes `group` flattened in order: None when they hold a single element,
    False when they do not flatten to one strided axis."""
    stride, size = None, 1
    for i in reversed(list(group)):
        n, s = m.shape[i], m.strides[i]
        if n == 1:
            continue
        if stride is None:
            stride, size = s, n
        elif s == stride * size:
            size *= n
        else:
            return False
    return stride


def _gather_input(x, lo, ext, order):
    """x[:, :, lo_1 : lo_1+ext_1, ...] as an array with axes (N, C, *ext), reading 0 outside x (zero
    padding), whose memory walks the axes in `order` (outer first; e.g. (0, 2, 3, 1) channels-last).
    Without padding and with x's innermost axis already order[-1] it is a view of x; otherwise one
    copy into scratch memory (the size of x: 0.1-0.3 ms here, a tenth of the im2col copy that follows
    and then reads in order)."""
    sp = x.shape[2:]
    inside = all(l >= 0 and l + e <= n for l, e, n in zip(lo, ext, sp))
    inner = order[-1]
    if inside and (x.shape[inner] == 1 or abs(x.strides[inner]) == x.itemsize):
        return x[(slice(None),) * 2 + tuple(slice(l, l + e) for l, e in zip(lo, ext))]
    full = x.shape[:2] + tuple(ext)
    out = _workspace("pad", tuple(full[i] for i in order), x.dtype).transpose(np.argsort(order))
    src = tuple(slice(min(max(l, 0), n), max(min(l + e, n), 0)) for l, e, n in zip(lo, ext, sp))
    dst = tuple(slice(s.start - l, s.stop - l) for s, l in zip(src, lo))
    if any(s.stop <= s.start for s in dst):
        out[...] = 0  # the window misses x entirely
        return out
    for a, s in enumerate(dst):  # zero only the padding slabs, then copy x into the middle
        pre = (slice(None),) * 2 + dst[:a]
        out[pre + (slice(0, s.start),)] = 0
        out[pre + (slice(s.stop, None),)] = 0
    _copy(out[(slice(None),) * 2 + dst], x[(slice(None),) * 2 + src])
    return out


# ----------------------------------------------------------------------------------------------------
# Correlation


def _layout(N, Ci, K, stride, out, w=None):
    """How to lay out the product. M = N * prod(out) output positions, Kp = prod(K) taps.

    "rows":  im2col (M, Kp*Ci) row-major, channel innermost, copied from a channels-last copy of x
             (contiguous runs of kw*Ci). The default: one large GEMM, cheap copies.
    "cols":  its transpose (Ci*Kp, M) row-major, copied from an NC-first copy of x (runs along the
             output width). Few channels, wide images: the 3-channel 32x32 first layer copies its
             3.5 MB in 0.19 ms against 0.55 ms row-major (runs of 9 elements).
    "nlast": (Ci*Kp, M) with the batch innermost, from a (C, *spatial, N) copy of x, for small images
             with a contiguous weight, whose (Co, Ci*Kp) matrix is then used as it is: the weight
             copy "rows" needs (0.9 ms for 512x512x3x3) costs more than the GEMM gains by it there.
    "scatter": GEMM first (x (N*X, Ci) @ w as (Ci, Co*Kp)), then Kp strided adds (col2im), when w is
             a flipped, channel-swapped view whose (Ci, Co*Kp) matrix is free (an input gradient) and
             the adds (Kp*M*Co elements, ~2.5x a copy's cost each) undercut the im2col copy (Kp*M*Ci)
             plus the weight copy (Co*Ci*Kp, ~3x: a strided gather).
    "shift": (_shift_correlate) only the first spatial axis's taps go to the GEMM's columns: for
             input gradients with Ci >= 2 Co on 8x8 and larger images.
    Measured per layer (channels-last inputs, float32, batch 32; ms):
        forward       rows / nlast / shift       dX         rows / scatter / shift
        64->128@16    5.99 / 7.42  / 7.16                  10.58 / 12.31   / 7.38
        128->256@8    4.95 / 5.50  / 6.21                   7.69 / 7.44    / 6.59
        256->256@8   10.05 / 11.00 / 10.76                  9.98 / 14.52   / 11.31
        256->512@4    4.70 / 4.56  / 6.96                   6.58 / 5.34    / 7.07
        512->512@4    9.74 / 9.06  / 13.02                 11.24 / 10.04   / 13.68
        512->512@2    3.60 / 2.63  / 5.47                   4.52 / 2.69    / 6.22
    The weight gradient (w None here) is fastest in rows everywhere but the first layer (cols)."""
    if STRATEGY is not None:
        return STRATEGY
    M, Kp = N * math.prod(out), math.prod(K)
    if Ci * Kp <= 64 and out[-1] >= 16:
        return "cols"
    if w is None:
        return "rows"
    Co = w.shape[0]
    if all(s == 1 for s in stride) and 2.5 * M * Co < M * Ci + 3 * Co * Ci and _scatter_weight(w)[0] is not None:
        return "scatter"
    if stride[0] == 1 and K[0] > 1 and out[0] >= 8 and Ci >= 2 * Co:
        return "shift"
    if M <= Co and _matrix(w, (1,) + tuple(range(2, w.ndim)), (0,), copy=False) is not None:
        return "nlast"
    return "rows"



def _im2col(x, stride, dilation, offset, K, out, layout):
    """The im2col matrix of x, (N*P) x (K*Ci): row m = (n, o...) holds x[n, ci, stride*o +
    dilation*k + offset] (0 outside x). Returns (matrix, tap axes order, batch last): the rows
    layout's C-ordered matrix with columns (k..., ci), or for "cols"/"nlast" a transposed view of a
    C-ordered (Ci*K, M) array with columns (ci, k...) and rows (n, o...) or (o..., n)."""
    N, Ci = x.shape[:2]
    d = len(K)
    sp_axes = tuple(range(2, 2 + d))
    ext = [s * (o - 1) + q * (k - 1) + 1 for s, q, k, o in zip(stride, dilation, K, out)]
    order = {"rows": (0,) + sp_axes + (1,), "cols": (0, 1) + sp_axes, "nlast": (1,) + sp_axes + (0,)}[layout]
    xp = _gather_input(x, offset, ext, order)
    sN, sC, sp = xp.strides[0], xp.strides[1], xp.strides[2:]
    so = tuple(s * t for s, t in zip(stride, sp))
    sk = tuple(q * t for q, t in zip(dilation, sp))
    M, Kp = N * math.prod(out), math.prod(K)
    if layout == "rows":
        view = _as_strided(xp, (N,) + tuple(out) + tuple(K) + (Ci,), (sN,) + so + sk + (sC,))
        if Kp == 1 and all(s == 1 for s in stride):
            return view.reshape(M, Ci), sp_axes + (1,), False  # 1x1 kernel: the input itself
        cols = _workspace("cols", view.shape, xp.dtype)
        np.copyto(cols, view)
        return cols.reshape(M, Kp * Ci), sp_axes + (1,), False
    if layout == "cols":
        view = _as_strided(xp, (Ci,) + tuple(K) + (N,) + tuple(out), (sC,) + sk + (sN,) + so)
    else:
        view = _as_strided(xp, (Ci,) + tuple(K) + tuple(out) + (N,), (sC,) + sk + so + (sN,))
    cols = _workspace("cols", view.shape, xp.dtype)
    np.copyto(cols, view)
    return cols.reshape(Ci * Kp, M).T, (1,) + sp_axes, layout == "nlast"


def _unflatten(y, N, out, nlast):
    """An (M, C) product whose rows are (n, o...) or, batch last, (o..., n), as (N, C, *out)."""
    C = y.shape[1]
    d = len(out)
    if nlast:
        return y.reshape(tuple(out) + (N, C)).transpose((d, d + 1) + tuple(range(d)))
    return np.moveaxis(y.reshape((N,) + tuple(out) + (C,)), -1, 1)


def _scatter_weight(w):
    """(w as a free (Ci, Co*K) matrix, with its reversed tap axes read forwards; those axes), or
    (None, ...) when that needs a copy. For an input gradient's weight view
    W.swapaxes(0, 1)[:, :, ::-1, ::-1] this is W itself as (O, C*K)."""
    flips = tuple(a for a in range(2, w.ndim) if w.strides[a] < 0)
    wf = w[tuple(slice(None, None, -1) if a in flips else slice(None) for a in range(w.ndim))]
    return _matrix(wf, (1,), (0,) + tuple(range(2, w.ndim)), copy=False), flips


def _scatter_correlate(x, w, stride, dilation, offset, out):
    """correlate as GEMM then col2im: T[n, i, co, k] = sum_ci x[n, ci, i] w[co, ci, k] at every input
    position i, then y[n, co, o] = sum_k T[n, stride*o + dilation*k + offset, co, k] (in range)."""
    N, Ci = x.shape[:2]
    Co, K = w.shape[0], w.shape[2:]
    d, X = len(K), x.shape[2:]
    wm, flips = _scatter_weight(w)
    xm = _matrix(x, (0,) + tuple(range(2, 2 + d)), (1,))  # (N*X, Ci): a view when x is channels-last
    T = (xm @ wm).reshape((N,) + tuple(X) + (Co,) + tuple(K))
    y = np.zeros((N,) + tuple(out) + (Co,), T.dtype)
    for k in np.ndindex(*K):
        tap = tuple(K[a] - 1 - k[a] if 2 + a in flips else k[a] for a in range(d))  # T's index of tap k
        ys, ts = [], []
        for a in range(d):  # the outputs o whose input index s*o + dil*k + off lies in [0, X)
            base, s = dilation[a] * k[a] + offset[a], stride[a]
            lo = max(0, -(base // s))  # ceil(-base / s)
            hi = min(out[a] - 1, (X[a] - 1 - base) // s)
            if hi < lo:
                break
            ys.append(slice(lo, hi + 1))
            ts.append(slice(base + s * lo, base + s * hi + 1, s))
        else:
            y[(slice(None),) + tuple(ys)] += T[(slice(None),) + tuple(ts) + (slice(None),) + tap]
    return np.moveaxis(y, -1, 1)


def _shift_correlate(x, w, stride, dilation, offset, out):
    """correlate with the im2col over all spatial axes but the first and the first axis's taps moved
    into the product's columns: Y[(n, e, o'), (k0, co)] = sum_{k', ci} x[n, ci, e, o' + k'] w[co, ci,
    k0, k'] over every padded first-axis position e (one GEMM, 1/K0 of the im2col copy), then
    y[n, co, o0, o'] = sum_k0 Y[(n, o0 + dil0*k0, o'), (k0, co)] (K0 - 1 strided adds). Needs stride
    1 on the first axis; computes (E0 / out0 - 1) extra rows. Measured at 64->128@16 (input
    gradient): the full im2col's (8192 x 1152) @ (1152 x 64) took 6.4 ms plus a 3.6 ms copy, this
    (9216 x 384) @ (384 x 192) 5.1 ms (a wider product runs faster) plus a 1.2 ms copy."""
    N, Ci = x.shape[:2]
    Co, K = w.shape[0], w.shape[2:]
    d = len(K)
    E0 = out[0] + dilation[0] * (K[0] - 1)
    rest = tuple(range(3, 2 + d))
    ext = [E0] + [s * (o - 1) + q * (k - 1) + 1 for s, q, k, o in zip(stride[1:], dilation[1:], K[1:], out[1:])]
    xp = _gather_input(x, offset, ext, (0,) + tuple(range(2, 2 + d)) + (1,))
    sN, sC, sp = xp.strides[0], xp.strides[1], xp.strides[2:]
    so = tuple(s * t for s, t in zip(stride[1:], sp[1:]))
    sk = tuple(q * t for q, t in zip(dilation[1:], sp[1:]))
    view = _as_strided(xp, (N, E0) + tuple(out[1:]) + tuple(K[1:]) + (Ci,), (sN, sp[0]) + so + sk + (sC,))
    R, Kr = N * E0 * math.prod(out[1:]), math.prod(K[1:]) * Ci
    if Kr == Ci and all(s == 1 for s in stride[1:]):
        cols = view.reshape(R, Kr)  # no other spatial taps: x itself (maybe a view)
    else:
        cols = _workspace("cols", view.shape, xp.dtype)
        np.copyto(cols, view)
        cols = cols.reshape(R, Kr)
    wm = _matrix(w, rest + (1,), (2, 0))  # (K'*Ci, K0*Co)
    Y = _matmul(cols, wm).reshape((N, E0, math.prod(out[1:]), K[0], Co))
    y = np.add(Y[:, 0:out[0], :, 0], Y[:, dilation[0]:dilation[0] + out[0], :, 1]) if K[0] > 1 else Y[:, :out[0], :, 0].copy()
    for k0 in range(2, K[0]):
        y += Y[:, k0 * dilation[0]:k0 * dilation[0] + out[0], :, k0]
    return np.moveaxis(y.reshape((N,) + tuple(out) + (Co,)), -1, 1)


def _plain_correlate(x, w, stride, dilation, offset, out):
    """correlate with denom 1: x[n, ci, stride*o + dilation*k + offset] read as 0 outside x."""
    N, Ci = x.shape[:2]
    Co, K = w.shape[0], w.shape[2:]
    dtype = np.result_type(x.dtype, w.dtype)
    if N == 0 or Co == 0 or Ci == 0 or 0 in out or 0 in K:
        return np.zeros((N, Co) + tuple(out), dtype)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    layout = _layout(N, Ci, K, stride, out, w)
    if layout == "scatter":
        if _scatter_weight(w)[0] is not None:
            return _scatter_correlate(x, w, stride, dilation, offset, out)
        layout = "rows"
    if layout == "shift":
        if stride[0] == 1:
            return _shift_correlate(x, w, stride, dilation, offset, out)
        layout = "rows"
    cols, order, nlast = _im2col(x, stride, dilation, offset, K, out, layout)
    wm = _matrix(w, order, (0,))
    if layout == "cols":
        # The im2col matrix is (Ci*K, N, P) in memory: one product per sample, W (Co, Ci*K) @ (Ci*K, P), lands
        # in C order (N, Co, P); one product for all would be (Co, N, P), and its transposing copy to C order
        # cost more than the product (3-channel 32x32 layer: 1.2 ms per sample against 0.8 + 2.4 ms).
        P = math.prod(out)
        c3 = cols.T.reshape(cols.shape[1], N, P)
        y = np.empty((N, Co, P), dtype)
        for n in range(N):
            np.matmul(wm.T, c3[:, n, :], out=y[n])
        return y.reshape((N, Co) + tuple(out))
    # One GEMM (M, K*Ci) @ (K*Ci, Co). The weight matrix is a view when the weight's memory already
    # has the taps in the im2col's order (a contiguous (Co, Ci, K) weight, column-major layouts),
    # otherwise a copy: 0.9 ms for 512x512x3x3, 1.4 ms for its flipped transposed view.
    y = _matmul(cols, wm)
    return _unflatten(y, N, out, nlast)


def _phases(stride, dilation, offset, denom, K, out):
    """Split a correlation with denominators into plain ones (polyphase): per axis, outputs o = P*j + p
    (P = q / gcd(s, q)) read x only through the taps k = k0 + Q*i (Q = q / gcd(dil, q)) whose index
    s*o + dil*k + off is divisible by q, at integer index (s/g)*j + (dil/gq)*i + (s*p + dil*k0 + off)/q.
    No zero-inserted (q^d times larger) input and no multiplications by zero.
    Yields per axis lists of (output slice, tap slice, stride', dilation', offset', out') or None."""
    per_axis = []
    for s, dl, off, q, k, o in zip(stride, dilation, offset, denom, K, out):
        g, gq = math.gcd(s, q), math.gcd(dl, q)
        P, Q = q // g, q // gq
        opts = []
        for p in range(min(P, o)):
            taps = [t for t in range(k) if (s * p + dl * t + off) % q == 0]
            n_out = len(range(p, o, P))
            if not taps:
                opts.append((slice(p, None, P), None, 0, 0, 0, n_out))
                continue
            k0 = taps[0]
            opts.append((slice(p, None, P), slice(k0, None, Q), s // g, dl // gq, (s * p + dl * k0 + off) // q, n_out))
        per_axis.append(opts)
    return per_axis


def _correlation(x, w, stride, dilation, offset, denom, out):
    """y[n, co, o] = sum_{ci, k} x[n, ci, (stride*o + dilation*k + offset)/denom] * w[co, ci, k] (per
    spatial axis), x read as 0 where the index is fractional or outside x. Returns (N, Co, *out), a
    view whose memory is channels-last (rows, scatter layouts), (Co, N, *out) (cols) or (*out, N, Co)
    (nlast). Denominators (a transposed convolution, a strided convolution's input gradient) are split
    into plain correlations by output phase (_phases) rather than zero-inserting x."""
    x, w = np.asarray(x), np.asarray(w)
    stride, dilation, offset, denom, out = (tuple(int(v) for v in t) for t in (stride, dilation, offset, denom, out))
    if all(q == 1 for q in denom):
        return _plain_correlate(x, w, stride, dilation, offset, out)
    N, Co = x.shape[0], w.shape[0]
    dtype = np.result_type(x.dtype, w.dtype)
    y = None
    for combo in itertools.product(*_phases(stride, dilation, offset, denom, w.shape[2:], out)):
        if any(c[1] is None for c in combo) or any(c[5] == 0 for c in combo):
            continue
        part = _plain_correlate(x, w[(slice(None),) * 2 + tuple(c[1] for c in combo)], tuple(c[2] for c in combo),
                                tuple(c[3] for c in combo), tuple(c[4] for c in combo), tuple(c[5] for c in combo))
        if y is None:  # channels last like most parts; zero where no tap lands
            y = np.moveaxis(np.zeros((N,) + tuple(out) + (Co,), dtype), -1, 1)
        y[(slice(None),) * 2 + tuple(c[0] for c in combo)] = part
    return y if y is not None else np.zeros((N, Co) + tuple(out), dtype)


def _correlate_weight(x, dy, stride, dilation, offset, window):
    """dw[co, ci, k] = sum_{n, o} x[n, ci, stride*o + dilation*k + offset] * dy[n, co, o] (per spatial
    axis; x read as 0 outside). Returns (Co, Ci, *window), possibly a view of a differently ordered
    array."""
    x, dy = np.asarray(x), np.asarray(dy)
    stride, dilation, offset, window = (tuple(int(v) for v in t) for t in (stride, dilation, offset, window))
    N, Ci = x.shape[:2]
    Co, out = dy.shape[1], dy.shape[2:]
    d = len(window)
    dtype = np.result_type(x.dtype, dy.dtype)
    if N == 0 or Ci == 0 or Co == 0 or 0 in out or 0 in window:
        return np.zeros((Co, Ci) + window, dtype)
    x, dy = x.astype(dtype, copy=False), dy.astype(dtype, copy=False)
    layout = _layout(N, Ci, window, stride, out)
    layout = "rows" if layout in ("scatter", "shift") else layout  # (forced: only correlate has those)
    cols, order, nlast = _im2col(x, stride, dilation, offset, window, out, layout)
    sp_axes = tuple(range(2, 2 + d))
    rows = sp_axes + (0,) if nlast else (0,) + sp_axes
    g = _matrix(dy, rows, (1,), copy=False)
    if g is None and layout == "cols" and dy.strides[-1] == dy.itemsize and Ci * math.prod(window) <= 256:
        # dy NC-first (NCHW): one product per sample, (Co, P) @ (P, Ci*K), summed, instead of
        # copying dy into an (N*P, Co) matrix (measured at 3->64@32: 1.3 ms against 0.6 + 1.25 ms)
        cT = cols.T.reshape(cols.shape[1], N, -1).transpose(1, 2, 0)  # (N, P, Ci*K)
        dw = np.matmul(dy.reshape(N, Co, -1), cT).sum(axis=0)
    else:
        # (Co, M) @ (M, K*Ci), dy as the (M, Co) matrix: a view when its memory is channels-last (what
        # _correlate returns) or channel-major, else one copy. The product's rows are the weight's first
        # axis, so the result is in the weight's own order up to a transpose within each row: an optimiser
        # then walks weight and gradient together (Adam on the transposed (K*Ci, Co) product took 93 ms a
        # step for the small VGG, 20 ms on C-ordered gradients; the per-row transpose is ~1 ms, a whole
        # transposing copy 13-15 ms for a 512x512x3x3 weight). Both orientations run at the same rate.
        dw = (g if g is not None else _matrix(dy, rows, (1,))).T @ cols
    taps = tuple(window[a - 2] for a in order if a != 1)
    if order[0] == 1:  # columns (ci, k...)
        return np.ascontiguousarray(dw).reshape((Co, Ci) + taps)
    return np.ascontiguousarray(np.moveaxis(dw.reshape((Co,) + taps + (Ci,)), -1, 1))


# ----------------------------------------------------------------------------------------------------
# Strided window views, reductions over windows, and the arg-max scatter


def _plain_axis(axes, extents):
    """The axis k of the array that a single view axis walks with coefficient +-1 (and no other view
    axis moves: a 'copy' axis such as a pool's channels), the longest such; None if there is none.
    Buffers below put it innermost so that every window position's sub-view runs along it with unit
    stride: NumPy's ufunc loops are then contiguous (SIMD) instead of stride-2 gathers. Measured at
    (32, 64, 32, 32), 3x3 stride 2: np.maximum over a stride-2 sub-view 0.48 ms, unit-stride 0.14 ms."""
    best = None
    for k, (c, d, q) in enumerate(axes):
        nz = [x for x in c if x]
        if q == 1 and len(nz) == 1 and abs(nz[0]) == 1 and (best is None or extents[k] > extents[best]):
            best = k
    return best


def _buffer(shape, dtype, order, fill=None):
    """An array of `shape` whose memory walks the axes in `order` (outer first)."""
    dims = tuple(shape[i] for i in order)
    if fill is None:
        buf = np.empty(dims, dtype)
    elif fill == 0:
        buf = np.zeros(dims, dtype)  # calloc: pages arrive zeroed (np.full wrote 9 MB in 3.5 ms)
    else:
        buf = np.full(dims, fill, dtype)
    return buf.transpose(np.argsort(order))


def _grid_view(a, axes, shape, fill=0):
    """V[m...] = a[e_0(m), e_1(m), ...], e_k = (sum_m c_km m + d_k)/q_k; `fill` off the grid (outside a
    or between grid points). axes: ((c_k, d_k, q_k), ...). A read-only strided view, of a itself when
    nothing needs padding or dilating, else of a copy padded with `fill`. Same contract as the
    earlier helper's; the copy (filled only at its borders, np.pad wrote everything twice) keeps
    a's memory order except that a 'copy' axis (_plain_axis: e.g. a pool's channels) goes innermost."""
    a = np.asarray(a)
    spec = []
    for k, (c, d, q) in enumerate(axes):
        flip = any(x < 0 for x in c)  # read backwards: view the (dilated) axis reversed
        if flip:
            c, d = tuple(-x for x in c), (a.shape[k] - 1) * q - d
        spec.append((c, d, q, flip))
    low = [d for c, d, q, f in spec]
    high = [d + sum(x * (n - 1) for x, n in zip(c, shape)) for c, d, q, f in spec]
    ext = [(n - 1) * q + 1 if n else 0 for n, (c, d, q, f) in zip(a.shape, spec)]  # extents in t units
    pads = [(max(0, -lo), max(0, hi - (e - 1))) for lo, hi, e in zip(low, high, ext)]
    src = a[tuple(slice(None, None, -1) if f else slice(None) for c, d, q, f in spec)]
    if any(p != (0, 0) for p in pads) or any(q != 1 for c, d, q, f in spec):
        big_shape = tuple(e + p0 + p1 for e, (p0, p1) in zip(ext, pads))
        order = [int(i) for i in np.argsort([-abs(s) for s in a.strides], kind="stable")]
        plain = _plain_axis(axes, a.shape)
        if plain is not None and a.shape[order[-1]] > 1 and _plain_axis([axes[order[-1]]], [1]) is None:
            order.remove(plain)
            order.append(plain)
        dilated = any(q != 1 for c, d, q, f in spec)
        big = _buffer(big_shape, a.dtype, order, fill if dilated else None)
        if not dilated:
            for k, (p0, p1) in enumerate(pads):  # fill the borders only
                pre = (slice(None),) * k
                big[pre + (slice(0, p0),)] = fill
                big[pre + (slice(big_shape[k] - p1, None),)] = fill
        big[tuple(slice(p0, p0 + e, q) for (p0, p1), e, (c, d, q, f) in zip(pads, ext, spec))] = src
        src = big
    src = src[tuple(slice(d + p0, None) for (c, d, q, f), (p0, p1) in zip(spec, pads))]
    strides = tuple(sum(c[m] * s for (c, d, q, f), s in zip(spec, src.strides)) for m in range(len(shape)))
    return _as_strided(src, shape=tuple(shape), strides=strides, writeable=False)


def _positions(win):
    """The window positions in row-major order."""
    return list(np.ndindex(*win))


def _first(view, n):
    """A copy of the window's first position (shape view.shape[:-n]) in the view's memory order, so
    that the whole-array loops below walk memory in order."""
    return np.array(view[(Ellipsis,) + (0,) * n], order="K", copy=True)


def _window_reduce(view, n, op):
    """Reduce the last n axes of a strided (possibly overlapping) view with op "max" or "sum": one
    whole-array ufunc per window position, in place (sum: adds in row-major window order). Measured
    at the (32, 64, 32, 32) 3x3 stride-2 pool on an np.pad-ed NCHW view:
    view.max(axis=(4, 5)) 56 ms (NumPy reduces 9 elements at a time), this loop 4.9 ms; on this
    module's _grid_view (channels innermost) 3.5 ms and 2.5 ms."""
    view = np.asarray(view)
    if op not in ("max", "sum"):
        raise ValueError(f"_window_reduce: op must be 'max' or 'sum', got {op!r}")
    win = view.shape[view.ndim - n:]
    if n == 0:
        return view.copy()
    if math.prod(win) == 0:
        if op == "max":
            raise ValueError("_window_reduce: max over an empty window")
        return np.zeros(view.shape[:view.ndim - n], view.dtype)
    f = np.maximum if op == "max" else np.add
    out = _first(view, n)
    for pos in _positions(win)[1:]:
        f(out, view[(Ellipsis,) + pos], out=out)
    return out


def _flat_dtype(count):
    return np.int8 if count <= 127 else np.int16 if count <= 32767 else np.intp


# The last arg-max's window position numbers, for _grid_scatter: (weak references to the returned
# index arrays, which are read-only so they cannot change, the flat int8 positions, window extents).
_memo = threading.local()


def _window_max_flat(view, n):
    """(max over the last n axes, the FIRST maximiser's window position number in row-major order), in one pass
    over the positions: a strict > (ties keep the earlier position), the position number merged into an int8
    array by np.maximum (positions only grow, so max(flat, p*mask) stores p where mask), and an in-place
    maximum. Measured at (32, 64, 16, 16): np.copyto(flat, p, where=mask) took 1.2-2.2 ms per position (a
    branch per element), the two int8 ufuncs 0.07 ms. NaN counts as the maximum, like np.argmax (the first)."""
    view = np.asarray(view)
    win = view.shape[view.ndim - n:]
    if math.prod(win) == 0:
        raise ValueError("_argmax: empty window")
    positions = _positions(win)
    best = _first(view, n)
    flat = np.zeros_like(best, dtype=_flat_dtype(len(positions)))  # zeros_like keeps best's memory order
    mask = np.empty_like(best, dtype=bool)
    step = np.empty_like(flat)
    for p, pos in enumerate(positions[1:], 1):
        v = view[(Ellipsis,) + pos]
        np.greater(v, best, out=mask)
        np.multiply(mask, flat.dtype.type(p), out=step)
        np.maximum(flat, step, out=flat)
        np.maximum(best, v, out=best)
    if best.dtype.kind in "fc":
        nan = np.isnan(best)
        if nan.any():  # np.argmax semantics: the first NaN (np.maximum has already made the max NaN)
            first = np.full(best.shape, len(positions), np.intp)
            for p in range(len(positions) - 1, -1, -1):
                np.copyto(first, p, where=np.isnan(view[(Ellipsis,) + positions[p]]))
            np.copyto(flat, first, where=nan, casting="unsafe")
    return best, flat


def _window_max_argmax(view, n):
    """(max over the last n axes, tuple of n index arrays of the FIRST maximiser in row-major window order);
    the index arrays are intp and read-only."""
    view = np.asarray(view)
    win = view.shape[view.ndim - n:]
    best, flat = _window_max_flat(view, n)
    # intp index arrays by table look-up: np.unravel_index took 2.7 ms at (32, 64, 16, 16), np.take 1.0
    tables = np.unravel_index(np.arange(math.prod(win)), win)
    index = tuple(np.take(t, flat) for t in tables)
    for i in index:
        i.flags.writeable = False
    _memo.last = (tuple(weakref.ref(i) for i in index), flat, win)
    return best, index


def _argmax(view, n):
    """The first maximiser over the last n axes (row-major window order; ties: the first, as
    PyTorch's max_pool2d), as a tuple of n intp index arrays of shape view.shape[:-n]."""
    return _window_max_argmax(view, n)[1]


def _window_numbers(best, win):
    """(flat window position numbers, window extents) for the index tuple `best` over a window of extents
    `win`: the arg-max's own int8 array when best is what _window_max_argmax returned, else computed."""
    if isinstance(best, np.ndarray):  # the position numbers themselves (_window_max_flat's)
        return best, win
    last = getattr(_memo, "last", None)
    if last is not None and len(last[0]) == len(best) and all(r() is b for r, b in zip(last[0], best)):
        return last[1], last[2]
    best = [np.asarray(b) for b in best]
    if any(b.size and (int(b.min()) < 0 or int(b.max()) >= w) for b, w in zip(best, win)):
        raise ValueError("_grid_scatter: a window index outside the window")
    flat = np.zeros(np.broadcast_shapes(*(b.shape for b in best)), _flat_dtype(math.prod(win)))
    for b, w in zip(best, win):  # flat = ((b0 * w1 + b1) * w2 + b2) ...
        np.multiply(flat, w, out=flat, casting="unsafe")
        np.add(flat, b, out=flat, casting="unsafe")
    return flat, win


def _grid_scatter(shape, axes, lead, window, best, values):
    """The adjoint of reading a _grid_view at the arg-max: an array of `shape`, zero but for
    out[e(m, best(m))] += values[m] over the lead positions m, where e is the view's index map
    (axes = _grid_view's spec over the lead axes then the window axes); positions off the array or
    between grid points add nothing, repeated positions accumulate.

    One np.add.at into a zero buffer padded (and dilated, for denominators) to hold every position
    the view can reach, at int32 element offsets base(m) + table[window position]; the array's grid is
    then cropped out of the buffer (returned as a view). Measured at (32, 64, 32, 32), 3x3 stride 2:
    np.ravel_multi_index + np.bincount 16 ms; one masked in-place add per
    window position into a strided view 5.8 ms; this 2.4 ms (np.add.at on 1-D int32 indices is a
    tight loop in NumPy 2; duplicates accumulate, so no overlap analysis is needed)."""
    shape, lead = tuple(int(v) for v in shape), tuple(int(v) for v in lead)
    values = np.asarray(values)
    dtype = values.dtype if values.dtype.kind in "fc" else np.result_type(values.dtype, 0.0)
    L = len(lead)
    flat, win = _window_numbers(best, tuple(int(v) for v in window))
    full = lead + win
    # the buffer spans t = sum_m c_m m + d (the index before dividing by q) over the view's reach
    # and over the array itself
    lo, hi = [], []
    for (c, d, q), size in zip(axes, shape):
        lo.append(min(0, d + sum(min(0, x * (e - 1)) for x, e in zip(c, full))))
        hi.append(max((size - 1) * q, d + sum(max(0, x * (e - 1)) for x, e in zip(c, full))))
    buf = np.zeros(tuple(h - l + 1 for l, h in zip(lo, hi)), dtype)  # calloc: zero pages, no writes
    crop = tuple(slice(-l, -l + (size - 1) * q + 1, q) if size else slice(0, 0)
                 for l, (c, d, q), size in zip(lo, axes, shape))
    if 0 in lead or buf.size == 0:
        return buf[crop]
    el = tuple(s // buf.itemsize for s in buf.strides)
    itype = np.int32 if buf.size < 2**31 else np.intp
    table = np.array([sum((d + sum(c[L + j] * k for j, k in enumerate(pos)) - l) * s
                          for (c, d, q), l, s in zip(axes, lo, el)) for pos in _positions(win)], itype)
    # walk the lead positions in the memory order of values (else of the arg-max), so that values
    # ravels without a copy: with an NCHW dY and a channels-last arg-max, walking the arg-max's order
    # cost 6.2 ms against 4.5 (a transposing copy of dY); np.take reads the int8 positions in any order
    flat = np.broadcast_to(flat, lead)
    perm = _memory_order(values if values.shape == lead else flat)
    base = np.zeros((), itype)
    for m in perm:  # base[m] = sum_m (sum_k c_km el_k) * m, built by broadcasting, in that order
        step = sum(c[m] * s for (c, d, q), s in zip(axes, el))
        base = np.add.outer(base, np.arange(lead[m], dtype=itype) * itype(step)) if lead[m] > 1 else base[..., None]
    index = np.take(table, flat.transpose(perm))
    index += base
    vals = np.broadcast_to(values, lead).transpose(perm).astype(dtype, copy=False)
    np.add.at(buf.reshape(-1), index.reshape(-1), vals.reshape(-1))
    return buf[crop]


def _memory_order(a):
    """a's axes from the largest stride to the smallest (size-1 and broadcast axes last)."""
    return tuple(sorted(range(a.ndim), key=lambda i: (a.shape[i] > 1 and a.strides[i] != 0, abs(a.strides[i])),
                        reverse=True))


def _zeros(like, shape):
    """Zeros of ``shape`` in ``like``'s floating dtype: an upstream gradient the caller omitted."""
    return np.zeros(shape, dtype=np.result_type(like, 0.0))


def _floats(*arrays):
    """The arrays in their common floating dtype (float64 for integers): steps in place keep the promoted type."""
    t = arrays[0].dtype if isinstance(arrays[0], np.ndarray) else None
    if t is not None and t.kind == "f" and all(isinstance(a, np.ndarray) and a.dtype == t for a in arrays):
        return arrays
    t = np.result_type(*arrays, 0.0)
    return tuple(a if isinstance(a, np.ndarray) and a.dtype == t else np.asarray(a, dtype=t) for a in arrays)


def _accumulate(into, grads):
    """array += alpha * gradient for each name: (array, alpha) in `into`; the gradients in order, None where added."""
    for name, (out, alpha) in into.items():
        g = grads.get(name)
        if g is None:
            raise ValueError(f"into: {name!r} is not a gradient computed here "
                             f"({', '.join(n for n, v in grads.items() if v is not None)}; a need_ flag off?)")
        if not isinstance(out, np.ndarray) or tuple(out.shape) != tuple(g.shape):
            raise ValueError(f"into: {name} has shape {tuple(g.shape)}, the array given {getattr(out, 'shape', out)}")
        if not out.flags.writeable:
            raise ValueError(f"into: the array given for {name} is read-only")
        if not np.can_cast(np.result_type(g.dtype, alpha), out.dtype, "same_kind"):
            raise ValueError(f"into: {name} is {g.dtype}, the array given {out.dtype}")
    shared = lambda x: any(np.may_share_memory(out, x) for out, _ in into.values())
    if any(shared(x) for g in grads.values() if hasattr(g, "add_into") for x in (g.a, g.b)):
        grads = {n: g.value() if hasattr(g, "add_into") else g for n, g in grads.items()}
    # A gradient that is a view of an array written here (dW = X, into dX: X) is copied before any write.
    grads = {n: g.copy() if isinstance(g, np.ndarray) and shared(g) else g for n, g in grads.items()}
    for name, (out, alpha) in into.items():
        g = grads[name]
        if hasattr(g, "add_into"):
            g.add_into(out, alpha)
        else:
            out += alpha * g
    return tuple(None if n in into else g for n, g in grads.items())


def _putmask(a, mask, v):
    """a = v where mask (mask, and v unless a number, of a's shape), walking memory in a's own order: putmask
    walks C order, a Fortran-ordered a (a product formed transposed) would be read with strides."""
    if np.ndim(v) and np.shape(v) != a.shape:  # putmask would repeat a smaller value over the flat order
        np.copyto(a, v, where=mask)
        return
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        a, mask, v = a.T, mask.T, (v.T if np.ndim(v) else v)
    np.putmask(a, mask, v)


def _matmul(a, b):
    """a @ b, formed with the longer side of the result as rows: (b.T @ a.T).T when a has fewer rows than b has
    columns. NumPy's OpenBLAS runs that order 1.1-1.8x faster (128x3072 by 3072x512, 128x256 by 256x512, ...);
    the value is the same, the result is then in Fortran order."""
    return (b.T @ a.T).T if a.ndim == b.ndim == 2 and a.shape[0] < b.shape[1] else a @ b


def _cblas():
    """{dtype: cblas_?gemm} of the OpenBLAS NumPy's wheels bundle (NumPy's own BLAS: no second thread pool), or {}."""
    import ctypes
    import pathlib

    root = pathlib.Path(np.__file__).resolve().parent
    for path in sorted([*root.parent.glob("numpy.libs/*openblas64*"), *root.glob(".dylibs/*openblas64*")]):
        try:
            lib = ctypes.CDLL(str(path))
            found = {np.dtype(t): getattr(lib, f"scipy_cblas_{c}gemm64_") for t, c in (("float32", "s"), ("float64", "d"))}
        except (OSError, AttributeError):
            continue
        i, p = ctypes.c_int64, ctypes.c_void_p
        for t, fn in found.items():
            real = ctypes.c_float if t == np.float32 else ctypes.c_double
            fn.restype, fn.argtypes = None, [ctypes.c_int, ctypes.c_int, ctypes.c_int, i, i, i, real, p, i, p, i, real, p, i]
        return found
    return {}


_CBLAS = None


class _Product:
    """a @ b, not formed yet: it goes into an array the caller gave."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.shape, self.dtype = a.shape[:-1] + b.shape[1:], np.result_type(a, b)

    def value(self):
        return _matmul(self.a, self.b)

    def add_into(self, out, alpha):
        """out += alpha * a @ b: BLAS's beta = 1 where the layouts allow (no product array, no second pass)."""
        global _CBLAS
        if _CBLAS is None:
            _CBLAS = _cblas()
        a, b = self.a, self.b
        gemm = _CBLAS.get(out.dtype) if a.dtype == b.dtype == out.dtype and out.ndim == a.ndim == b.ndim == 2 else None
        if gemm is not None and min(out.shape + a.shape) > 1 and all(
                (x.flags.c_contiguous or x.flags.f_contiguous) and x.flags.aligned for x in (out, a, b)):
            row = out.flags.c_contiguous  # CBLAS row-major (101) for a C-ordered out, column-major (102) else

            def operand(x):  # (transpose flag, leading dimension) of x in out's order
                same = x.flags.c_contiguous if row else x.flags.f_contiguous
                return (111, x.shape[row]) if same else (112, x.shape[not row])

            (ta, lda), (tb, ldb) = operand(a), operand(b)
            m, n = out.shape
            gemm(101 if row else 102, ta, tb, m, n, a.shape[1], alpha, a.ctypes.data, lda, b.ctypes.data, ldb,
                 1.0, out.ctypes.data, n if row else m)
            return
        a, b = (alpha * a, b) if a.size <= b.size else (a, alpha * b)
        out += _matmul(a, b)


def _product(into, name, a, b):
    """a @ b, or deferred when the gradient `name` goes into an array the caller gave."""
    return _Product(a, b) if into and name in into else _matmul(a, b)


def _at_max(v, f, n):
    """v at the first maximum of f over their last n axes (ties: first in row-major order)."""
    lead = f.shape[:-n]
    flat = f.reshape(lead + (-1,)).argmax(axis=-1)
    return np.take_along_axis(np.broadcast_to(v, f.shape).reshape(lead + (-1,)), flat[..., None], axis=-1)[..., 0]


def _scatter_add(shape, index, values):
    """An array of `shape`, zero but for out[index] += values (repeated positions accumulate; a position
    off the array, the arg-max of a window that is all padding, adds nothing)."""
    *index, values = np.broadcast_arrays(*index, values)
    inside = np.logical_and.reduce([(i >= 0) & (i < n) for i, n in zip(index, shape)])
    flat = np.ravel_multi_index([np.where(inside, i, 0) for i in index], shape)
    out = np.bincount(flat.ravel(), weights=np.where(inside, values, 0).ravel(), minlength=int(np.prod(shape)))
    return out.reshape(shape).astype(values.dtype, copy=False)


def _labels(a, n, where):
    """An index array (labels, token ids) as it is, if it holds integers in 0..n-1; else one ValueError line."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{where} must hold integers (labels, indices), got {a.dtype}")
    outside = (a < 0) | (a >= n)
    if outside.any():
        raise ValueError(f"{where} holds {a[outside].flat[0]}, outside 0..{n - 1}")
    return a


def _mesh(shape, like):
    """Broadcastable index arrays 0..n-1, one per axis of `shape` (aranges reshaped: np.ogrid took 19 µs for
    two axes, this 4)."""
    return [np.arange(n).reshape((1,) * k + (n,) + (1,) * (len(shape) - k - 1)) for k, n in enumerate(shape)]


def _c_order(a):
    """a in C order. What a layer returns feeds the next elementwise steps beside arrays in C order, and NumPy
    walks mixed memory orders with strides: ReLU's gradient on a channels-last X and a C-ordered dY took 9.6 ms
    against 1.6 ms on two C-ordered arrays (2M float32); the copy costs ~0.5 ms."""
    return np.ascontiguousarray(a)


def _correlate(x, w, bias, stride, dilation, offset, denom, out):
    """y[n, co, o] = sum_{ci, k} x[n, ci, (stride*o + dilation*k + offset)/denom] w[co, ci, k] (per spatial
    axis; x read as 0 where the index is fractional or outside x), plus bias[co] when given."""
    y = _c_order(_correlation(x, w, stride, dilation, offset, denom, out))
    if bias is not None:
        y += np.asarray(bias).reshape((-1,) + (1,) * len(out))
    return y


def _correlate_transposed(y, w, stride, dilation, padding, out):
    """dx[n, ci, u] = sum_{co, h, k: stride*h + dilation*k - padding = u} y[n, co, h] w[co, ci, k] (a transposed
    convolution): the correlation of y, read between its grid points, with w flipped and its channels swapped
    (a view: no copy)."""
    w = np.asarray(w)
    d = len(out)
    flipped = w.swapaxes(0, 1)[(slice(None), slice(None)) + (slice(None, None, -1),) * d]
    offset = tuple(int(p) - int(q) * (k - 1) for p, q, k in zip(padding, dilation, w.shape[2:]))
    return _c_order(_correlation(y, flipped, (1,) * d, dilation, offset, stride, out))


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


def _max_pool(x, stride, dilation, offset, window, out, argmax=False):
    """y[n, c, o...] = max_k x[n, c, stride*o + dilation*k + offset ...], reads off x never winning; with argmax,
    (y, each window's first arg-max as its position number in the window, row-major)."""
    x = np.asarray(x)
    view = _grid_view(x, _pool_axes(stride, dilation, offset), x.shape[:2] + tuple(out) + tuple(window), -np.inf)
    if argmax:
        y, flat = _window_max_flat(view, len(window))
        return _c_order(y), flat
    return _c_order(_window_reduce(view, len(window), "max"))


def _max_pool_scatter(x, values, stride, dilation, offset, window, argmax=None):
    """The gradient of _max_pool: values[n, c, o...] added at x's position of each window's first arg-max (the
    one _max_pool returned, else searched for again)."""
    x, values = np.asarray(x), np.asarray(values)
    axes, lead = _pool_axes(stride, dilation, offset), values.shape
    if argmax is None:
        argmax = _argmax(_grid_view(x, axes, lead + tuple(window), -np.inf), len(window))
    return _c_order(_grid_scatter(x.shape, axes, lead, window, argmax, values))


def _masked(value, x, threshold):
    """value where x > threshold, else 0 (ReLU's gradient): a product with the mask, 8x faster than np.where
    (measured 1.0 against 8.2 ms on 2M float32). Where value is inf or nan and the mask 0, the product is nan
    and the select's 0 is written there; a masked negative value comes out as -0.0, which equals 0."""
    keep = np.greater(x, threshold)
    with np.errstate(invalid="ignore"):  # inf * 0 is the nan written over just below
        out = np.multiply(value, keep, dtype=np.result_type(value, x, 0.0))
    if not np.isfinite(out).all():
        np.copyto(out, 0, where=~keep)
    return out
