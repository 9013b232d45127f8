"""LaTeX for derivations: index notation, and matrix notation for closed forms.

``IndexLatexPrinter`` writes ``Σ_s`` instead of ``Σ_{s=0}^{S-1}`` (an index's
range is its declaration) and ``∂Y_sn/∂X_pq`` as a fraction.

``matrix_notation`` reads a rank ≤ 2 statement back into the course's matrix
language: GEMMs as products with transposes (``dYᵀ X``), elementwise work with
``∘`` and ``⊘``, a reduction over rows as ``1ᵀ(·)`` and over columns as
``(·)1``, broadcast back with ``1 1ᵀ``. Where no such reading exists it
returns None and the derivation shows index notation only.
"""
from __future__ import annotations

import sympy as sp
import sympy.printing.str
from sympy.printing.latex import LatexPrinter

from .ir import MaxOver, free_indices, gathered
from .recognise import contraction
from .text import positive_first


class IndexLatexPrinter(LatexPrinter):
    def __init__(self, names: dict | None = None):
        super().__init__({"symbol_names": {}})
        self.names = names or {}

    def _name(self, label) -> str:
        s = str(label)
        if s in self.names:
            return self.names[s]
        if s.startswith("d") and len(s) > 1:
            return r"\mathrm{d}" + self._name(s[1:])
        return super()._print(sp.Symbol(s))

    def _print_Symbol(self, e, style="plain"):
        return self.names.get(e.name) or super()._print_Symbol(e)

    def _print_IndexedBase(self, e):
        return self._name(e.label)

    def _print_Indexed(self, e):
        # Single-letter indices run together (X_{sj}); a longer name (a1) or an expression needs commas.
        plain = all(isinstance(i, (sp.Idx, sp.Integer, sp.Symbol)) and len(str(i)) == 1 for i in e.indices)
        idx = ("" if plain else ",").join(self._print(i) for i in e.indices)
        base = self._name(e.base.label)
        if "^" in base:  # \sigma^2 → \sigma^2_{q}
            return f"{{{base}}}_{{{idx}}}"
        return f"{base}_{{{idx}}}"

    def _print_Idx(self, e):
        return self._print(e.label)

    def _print_Add(self, e, order=None):
        # Positive terms first: X - T reads better than -T + X.
        return super()._print_Add(sp.Add(*positive_first(e.as_ordered_terms()), evaluate=False), order="none")

    def _print_Sum(self, e):
        idx = "".join(self._print(lim[0]) for lim in e.limits)
        body = self._print(e.function)
        if isinstance(e.function, sp.Add):
            body = rf"\left({body}\right)"
        return rf"\sum_{{{idx}}} {body}"

    def _print_Derivative(self, e):
        (wrt, n), = e.variable_count
        return rf"\frac{{\partial {self._print(e.expr)}}}{{\partial {self._print(wrt)}}}"

    def _print_KroneckerDelta(self, e, exp=None):
        i, j = e.args
        sep = "" if isinstance(i, sp.Idx) and isinstance(j, sp.Idx) else ","
        return rf"\delta_{{{self._print(i)}{sep}{self._print(j)}}}"


def index_latex(expr, names) -> str:
    return IndexLatexPrinter(names).doprint(expr)


# -- matrix notation -----------------------------------------------------------

ONE = r"\mathbf{1}"


class _NoReading(Exception):
    pass


class MatrixNotation:
    """Rank ≤ 2 index expressions read as matrix expressions."""

    def __init__(self, names):
        self.p = IndexLatexPrinter(names)

    def name(self, e):
        return self.p._name(e.base.label)

    def render(self, e, layout):
        free = [i for i in layout if i in free_indices(e)]
        if isinstance(e, sp.Indexed):
            ind = list(e.indices)
            if len(set(ind)) != len(ind):
                raise _NoReading
            return self.name(e) + (r"^\top" if len(ind) == 2 and ind != free else "")
        if isinstance(e, sp.KroneckerDelta) and len(free) == 2:
            return "I"
        if not e.has(sp.Indexed):
            return self.p.doprint(e)
        if isinstance(e, sp.Add):
            combined = self._combined_gemv(e, layout)
            if combined:
                return combined
            out = ""
            for n, t in enumerate(sorted(e.args, key=lambda a: a.could_extract_minus_sign())):
                neg = t.could_extract_minus_sign()
                body = self.render(-t if neg else t, layout)
                if isinstance(-t if neg else t, sp.Add):
                    body = rf"\left({body}\right)"
                out += (" - " if neg else (" + " if n else "")) + body
            return out
        if isinstance(e, sp.Mul):
            return self._mul(e, layout)
        if isinstance(e, sp.Pow):
            if e.exp == sp.S.Half:
                return rf"\sqrt{{{self.render(e.base, layout)}}}"
            if e.exp.is_Integer and e.exp > 0:
                return rf"{self._wrap(e.base, layout)}^{{\circ {e.exp}}}"
            raise _NoReading
        if isinstance(e, sp.Sum):
            return self._sum(e, layout)
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e, layout)
        if isinstance(e, sp.Function) and len(e.args) == 1:
            return rf"\{type(e).__name__}\left({self.render(e.args[0], layout)}\right)" if type(e).__name__ in (
                "exp", "log", "tanh") else self.p.doprint(e.func(sp.Symbol(self.render(e.args[0], layout))))
        raise _NoReading

    def _wrap(self, e, layout):
        s = self.render(e, layout)
        return rf"\left({s}\right)" if isinstance(e, (sp.Add,)) else s

    def _mul(self, e, layout):
        scalars = [f for f in e.args if not f.has(sp.Indexed)]
        arrays = [f for f in e.args if f.has(sp.Indexed)]
        vectors = [f for f in arrays if isinstance(f, sp.Indexed) and len(f.indices) == 1]
        if len(layout) == 2 and len(arrays) == 2 == len(vectors) and {v.indices[0] for v in vectors} == set(layout):
            col, row = sorted(vectors, key=lambda v: layout.index(v.indices[0]))
            coeff = sp.Mul(*scalars)
            outer = f"{self.name(col)} {self.name(row)}^\\top"
            return outer if coeff == 1 else rf"{self.p.doprint(coeff)} \\, {outer}"
        num = [f for f in arrays if not (isinstance(f, sp.Pow) and f.exp.is_negative)]
        den = [1 / f for f in arrays if isinstance(f, sp.Pow) and f.exp.is_negative]
        coeff = sp.Mul(*scalars)
        parts = [self._wrap(f, layout) for f in num] or ["1"]
        s = r" \circ ".join(parts)
        if den:
            d = r" \circ ".join(self._wrap(f, layout) for f in den)
            s = rf"\left({s}\right) \oslash \left({d}\right)" if len(den) > 1 or len(num) > 1 else rf"{s} \oslash {d}"
        if coeff == 1:
            return s
        if coeff == -1:
            return "-" + s
        return rf"{self.p.doprint(coeff)} \, {s}" if not coeff.could_extract_minus_sign() else rf"-{self.p.doprint(-coeff)} \, {s}"

    def _sum(self, e, layout):
        bound = [lim[0] for lim in e.limits]
        body = e.function
        target = [i for i in layout if i in free_indices(e)]
        c = contraction(e, target)
        if c is not None and c.kind == "gemm":
            return self.render(c.left, list(c.left_layout)) + " " + self.render(c.right, list(c.right_layout))
        gemv = self._gemv(e, target)
        if gemv:
            return f"{gemv[0]} {gemv[1]}"
        main = max(sorted(body.atoms(sp.Indexed), key=sp.default_sort_key), key=lambda t: len(t.indices))
        natural = [i for i in main.indices]
        inner_layout = natural if all(i in natural for i in target) else target + bound
        inner = self.render(body, inner_layout)
        inner = inner if isinstance(body, sp.Indexed) else rf"\left({inner}\right)"
        if any(k not in inner_layout for k in bound):
            raise _NoReading
        rows = [k for k in bound if inner_layout.index(k) == 0]
        cols = [k for k in bound if inner_layout.index(k) == len(inner_layout) - 1 and k not in rows]
        if len(rows) + len(cols) != len(bound) or len(inner_layout) > 2:
            raise _NoReading
        s = (ONE + r"^\top " if rows else "") + inner + (" " + ONE if cols else "")
        # A reduced vector broadcast back over the statement's other axis.
        if len(layout) == 2 and len(target) == 1:
            s = (ONE + " " + s) if rows else (s + " " + ONE + r"^\top")
        return s

    def _gemv(self, e, target):
        """Σ_k A_pk v_k as (``A`` or ``A^T``, ``v``), else None."""
        c = contraction(e, target)
        if c is None or c.kind != "gemv":
            return None
        A = c.left
        return self.name(A) + (r"^\top" if tuple(A.indices) != c.left_layout else ""), self.name(c.right)

    def _combined_gemv(self, e, layout):
        """A v + B v = (A + B) v."""
        target = [i for i in layout if i in free_indices(e)]
        parts = [self._gemv(t, target) for t in e.args]
        if all(parts) and len({v for _, v in parts}) == 1:
            return r"\left(" + " + ".join(m for m, _ in parts) + r"\right) " + parts[0][1]
        return None

    def _piecewise(self, e, layout):
        if len(e.args) == 2 and e.args[1].expr == 0:
            value, cond = e.args[0]
            c = self.p.doprint(cond.func(*[sp.Symbol(self.render(a, layout)) for a in cond.args]))
            return rf"{self._wrap(value, layout)} \circ \left[{c}\right]"
        raise _NoReading


def matrix_notation(lhs, expr, names) -> str | None:
    """``lhs = expr`` in matrix notation, or None when there is no rank ≤ 2 reading."""
    indices = tuple(lhs.indices) if isinstance(lhs, sp.Indexed) else ()
    # A read through an index array (X[p, y_p], δ(q, y_p)) has no matrix reading here.
    if len(indices) > 2 or expr.has(MaxOver) or any(gathered(r) for r in expr.atoms(sp.Indexed)):
        return None
    m = MatrixNotation(names)
    try:
        rhs = m.render(expr, list(indices))
    except _NoReading:
        return None
    base = lhs.base if isinstance(lhs, sp.Indexed) else lhs
    return f"{m.p._name(base.label)} = {rhs}"
