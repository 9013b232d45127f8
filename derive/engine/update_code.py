"""Adding gradients into arrays the caller gives (``into``): the machinery backward kernels call.

No mathematics lives here. ``<module>_backward(..., into={"dW": (W, -lr)})``
adds ``-lr · dW`` to ``W`` in place instead of returning ``dW`` (None in its
place): plain SGD without a gradient array, or accumulation into a buffer.

Every target is checked (a gradient of this kernel, its shape, writeable, a
dtype the gradient casts to) before any is written. A gradient that is one
matrix product (``dW = dY.T @ X``) is deferred by ``_product`` and added
straight into its array: BLAS's own ``beta = 1`` (NumPy's bundled OpenBLAS,
found through ctypes; ``addmm_`` in Torch), else the product formed and added.
A deferred product whose factors overlap any target is formed before any
write, and so is a copy of any gradient that overlaps one, so the order of the
updates never matters.

Every kernel first brings its arrays to their common floating dtype
(``_floats``; float64, or Torch's default float, for integers): a NumPy
statement built in place (``Y = X @ W.T`` then ``Y += b``), Torch's ``addmm``
for ``b + X @ W.T`` and a number cast to the arrays' type then all have the
type the whole expression would have been promoted to.

Each backend's functions are source text, copied into the generated files that
use them (as grid_code's are).
"""

NUMPY = {
    "_accumulate": '''
def _accumulate(into, grads):
    \"\"\"array += alpha * gradient for each name: (array, alpha) in `into`; the gradients in order, None where added.\"\"\"
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
''',
    "_floats": '''
def _floats(*arrays):
    """The arrays in their common floating dtype (float64 for integers): steps in place keep the promoted type."""
    t = arrays[0].dtype if isinstance(arrays[0], np.ndarray) else None
    if t is not None and t.kind == "f" and all(isinstance(a, np.ndarray) and a.dtype == t for a in arrays):
        return arrays
    t = np.result_type(*arrays, 0.0)
    return tuple(a if isinstance(a, np.ndarray) and a.dtype == t else np.asarray(a, dtype=t) for a in arrays)
''',
    "_putmask": '''
def _putmask(a, mask, v):
    \"\"\"a = v where mask (mask, and v unless a number, of a's shape), walking memory in a's own order: putmask
    walks C order, a Fortran-ordered a (a product formed transposed) would be read with strides.\"\"\"
    if np.ndim(v) and np.shape(v) != a.shape:  # putmask would repeat a smaller value over the flat order
        np.copyto(a, v, where=mask)
        return
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        a, mask, v = a.T, mask.T, (v.T if np.ndim(v) else v)
    np.putmask(a, mask, v)
''',
    "_matmul": '''
def _matmul(a, b):
    \"\"\"a @ b, formed with the longer side of the result as rows: (b.T @ a.T).T when a has fewer rows than b has
    columns. NumPy's OpenBLAS runs that order 1.1-1.8x faster (128x3072 by 3072x512, 128x256 by 256x512, ...);
    the value is the same, the result is then in Fortran order.\"\"\"
    return (b.T @ a.T).T if a.ndim == b.ndim == 2 and a.shape[0] < b.shape[1] else a @ b
''',
    "_product": '''
def _cblas():
    \"\"\"{dtype: cblas_?gemm} of the OpenBLAS NumPy's wheels bundle (NumPy's own BLAS: no second thread pool), or {}.\"\"\"
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
    \"\"\"a @ b, not formed yet: it goes into an array the caller gave.\"\"\"

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.shape, self.dtype = a.shape[:-1] + b.shape[1:], np.result_type(a, b)

    def value(self):
        return _matmul(self.a, self.b)

    def add_into(self, out, alpha):
        \"\"\"out += alpha * a @ b: BLAS's beta = 1 where the layouts allow (no product array, no second pass).\"\"\"
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
    \"\"\"a @ b, or deferred when the gradient `name` goes into an array the caller gave.\"\"\"
    return _Product(a, b) if into and name in into else _matmul(a, b)
''',
}

TORCH = {
    "_accumulate": '''
def _accumulate(into, grads):
    \"\"\"array += alpha * gradient for each name: (array, alpha) in `into`; the gradients in order, None where added.\"\"\"
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
''',
    "_floats": '''
def _floats(*arrays):
    """The tensors in their common floating dtype (the default float for integers), as b + X @ W.T would promote."""
    t = arrays[0].dtype
    if t.is_floating_point and all(a.dtype == t for a in arrays):
        return arrays
    for a in arrays[1:]:
        t = torch.promote_types(t, a.dtype)
    t = t if t.is_floating_point else torch.get_default_dtype()
    return tuple(a if a.dtype == t else a.to(t) for a in arrays)
''',
    "_product": '''
class _Product:
    \"\"\"a @ b, not formed yet: it goes into an array the caller gave.\"\"\"

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.shape, self.dtype, self.device = tuple(a.shape[:-1] + b.shape[1:]), a.dtype, a.device

    def value(self):
        return self.a @ self.b

    def add_into(self, out, alpha):
        \"\"\"out += alpha * a @ b in one BLAS call (beta = 1).\"\"\"
        if self.b.dim() == 1:
            out.addmv_(self.a, self.b, alpha=alpha)
        else:
            out.addmm_(self.a, self.b, alpha=alpha)


def _product(into, name, a, b):
    \"\"\"a @ b, or deferred when the gradient `name` goes into an array the caller gave.\"\"\"
    return _Product(a, b) if into and name in into else a @ b
''',
}
