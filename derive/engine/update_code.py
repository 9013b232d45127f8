"""Adding gradients into arrays the caller gives (``into``): the machinery backward kernels call.

No mathematics lives here. ``<module>_backward(..., into={"dW": (W, -lr)})``
adds ``-lr · dW`` to ``W`` in place instead of returning ``dW`` (None in its
place): plain SGD without a gradient array, or accumulation into a buffer.

A gradient that is one matrix product (``dW = dY.T @ X``) is not formed when
it goes into an array: ``_product`` defers it, and ``_accumulate`` adds it
straight into the array (the scale on the smaller factor in NumPy; BLAS's own
``beta = 1`` through ``addmm_`` in Torch). Every other value is computed
before any array is written, and a deferred product is formed first after all
when an array given overlaps one of its factors, so the order of the updates
never matters.

Each backend's functions are source text, copied into the generated files that
use them (as grid_code's are).
"""

NUMPY = {
    "_accumulate": '''
def _accumulate(into, grads):
    """array += alpha * gradient for each name: (array, alpha) in `into`; the gradients in order, None where added."""
    for name, (out, alpha) in into.items():
        g = grads.get(name)
        if g is None:
            raise ValueError(f"into: {name!r} is not a gradient computed here ({', '.join(grads)}; a need_ flag off?)")
        if tuple(out.shape) != tuple(g.shape):
            raise ValueError(f"into: {name} has shape {tuple(g.shape)}, the array given {tuple(out.shape)}")
    shared = lambda x: any(np.may_share_memory(out, x) for out, _ in into.values())
    if any(shared(x) for g in grads.values() if hasattr(g, "add_into") for x in (g.a, g.b)):
        grads = {n: g.value() if hasattr(g, "add_into") else g for n, g in grads.items()}
    # A gradient that is a view of an array written here (dW = X, into dX: X) is copied before any write.
    grads = {n: g.copy() if n in into and isinstance(g, np.ndarray) and shared(g) else g for n, g in grads.items()}
    for name, (out, alpha) in into.items():
        g = grads[name]
        if hasattr(g, "add_into"):
            g.add_into(out, alpha)
        else:
            out += alpha * g
    return tuple(None if n in into else g for n, g in grads.items())
''',
    "_product": '''
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
        self.a, self.b, self.shape = a, b, a.shape[:-1] + b.shape[1:]

    def value(self):
        return self.a @ self.b

    def add_into(self, out, alpha):
        """out += alpha * a @ b: BLAS's beta = 1 where the layouts allow (no product array, no second pass)."""
        global _CBLAS
        if _CBLAS is None:
            _CBLAS = _cblas()
        a, b = self.a, self.b
        gemm = _CBLAS.get(out.dtype) if a.dtype == b.dtype == out.dtype and out.ndim == a.ndim == b.ndim == 2 else None
        if gemm is not None and min(out.shape + a.shape) > 1 and all(x.flags.c_contiguous or x.flags.f_contiguous
                                                                      for x in (out, a, b)):
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
        out += a @ b


def _product(into, name, a, b):
    """a @ b, or deferred when the gradient `name` goes into an array the caller gave."""
    return _Product(a, b) if into and name in into else a @ b
''',
}

TORCH = {
    "_accumulate": '''
class _Product:
    """a @ b, not formed yet: it goes into an array the caller gave."""

    def __init__(self, a, b):
        self.a, self.b, self.shape = a, b, tuple(a.shape[:-1] + b.shape[1:])

    def value(self):
        return self.a @ self.b


def _accumulate(into, grads):
    """array += alpha * gradient for each name: (array, alpha) in `into`; the gradients in order, None where added."""
    for name, (out, alpha) in into.items():
        g = grads.get(name)
        if g is None:
            raise ValueError(f"into: {name!r} is not a gradient computed here ({', '.join(grads)}; a need_ flag off?)")
        if tuple(out.shape) != tuple(g.shape):
            raise ValueError(f"into: {name} has shape {tuple(g.shape)}, the array given {tuple(out.shape)}")
    storage = lambda t: t.untyped_storage().data_ptr()
    shared = lambda x: any(storage(out) == storage(x) for out, _ in into.values())
    if any(shared(x) for g in grads.values() if isinstance(g, _Product) for x in (g.a, g.b)):
        grads = {n: g.value() if isinstance(g, _Product) else g for n, g in grads.items()}
    # A gradient that is a view of an array written here (dW = X, into dX: X) is copied before any write.
    grads = {n: g.clone() if n in into and torch.is_tensor(g) and shared(g) else g for n, g in grads.items()}
    for name, (out, alpha) in into.items():
        g = grads[name]
        if not isinstance(g, _Product):
            out.add_(g, alpha=alpha)
        elif g.b.dim() == 1:
            out.addmv_(g.a, g.b, alpha=alpha)
        else:
            out.addmm_(g.a, g.b, alpha=alpha)
    return tuple(None if n in into else g for n, g in grads.items())
''',
    "_product": '''
def _product(into, name, a, b):
    """a @ b, or deferred when the gradient `name` goes into an array the caller gave."""
    return _Product(a, b) if into and name in into else a @ b
''',
}
