"""Index notation in plain Unicode: code comments, error messages, the terminal.

``dX_pq = Σ_n dY_pn W_nq``; ``max(0, X_sj)``, ``|X_sj|``, ``√(σ²)``; positive
terms first (``X_pq - T_pq``, not ``-T_pq + X_pq``). Nodes the engine adds to
SymPy print themselves through an ``_index_text`` method.
"""
from __future__ import annotations

import sympy as sp
import sympy.printing.str
from sympy.printing.precedence import PRECEDENCE


def positive_first(terms):
    """Terms of a sum with the positive ones first (a stable reordering)."""
    return sorted(terms, key=lambda a: a.could_extract_minus_sign())


class IndexTextPrinter(sp.printing.str.StrPrinter):
    printmethod = "_index_text"  # not Indexed._sympystr, which prints X[s, m]

    def _as_ordered_terms(self, expr, order=None):
        return positive_first(super()._as_ordered_terms(expr, order))

    def _print_Indexed(self, e):
        if not all(isinstance(i, (sp.Idx, sp.Integer, sp.Symbol)) for i in e.indices):
            return f"{e.base.label}[{', '.join(self._print(i) for i in e.indices)}]"
        names = [str(i) for i in e.indices]
        sep = "" if all(len(n) == 1 for n in names) else ","
        return f"{e.base.label}_{sep.join(names)}"

    def _print_IndexedBase(self, e):
        return str(e.label)

    def _print_Idx(self, e):
        return str(e.label)

    def _print_Sum(self, e):
        idx = "".join(str(lim[0]) for lim in e.limits)
        body = self._print(e.function)
        if isinstance(e.function, sp.Add):
            body = f"({body})"
        return f"Σ_{idx} {body}"

    def _print_KroneckerDelta(self, e):
        if not all(isinstance(a, sp.Idx) for a in e.args):
            return f"δ({self._print(e.args[0])}, {self._print(e.args[1])})"
        return f"δ_{e.args[0]}{e.args[1]}"

    def _print_Derivative(self, e):
        (wrt, n), = e.variable_count
        return f"∂{self._print(e.expr)}/∂{self._print(wrt)}"

    def _print_Piecewise(self, e):
        parts = [f"{self._print(v)} if {self._print(c)}" for v, c in e.args[:-1]]
        last = e.args[-1]
        tail = self._print(last.expr) if last.cond == sp.true else f"{self._print(last.expr)} if {self._print(last.cond)}"
        return "(" + " else ".join(parts + [tail]) + ")"

    def _print_Max(self, e):
        return "max(" + ", ".join(self._print(a) for a in sorted(e.args, key=lambda a: not a.is_number)) + ")"

    def _print_Min(self, e):
        return "min(" + ", ".join(self._print(a) for a in sorted(e.args, key=lambda a: not a.is_number)) + ")"

    def _print_Abs(self, e):
        return f"|{self._print(e.args[0])}|"

    def _print_Pow(self, e, rational=False):
        if e.exp == sp.S.Half:
            return f"√({self._print(e.base)})"
        if e.exp == -sp.S.Half:
            return f"1/√({self._print(e.base)})"
        return super()._print_Pow(e, rational)

    def _print_Not(self, e):
        return "not " + self.parenthesize(e.args[0], PRECEDENCE["Not"])

    def _print_And(self, e):
        return " and ".join(self.parenthesize(a, PRECEDENCE["And"]) for a in e.args)

    def _print_Or(self, e):
        return " or ".join(self.parenthesize(a, PRECEDENCE["Or"]) for a in e.args)

    def _print_Exp1(self, e):
        return "e"

    def _print_Pi(self, e):
        return "π"


def index_text(expr) -> str:
    return IndexTextPrinter().doprint(expr)
