"""One-line errors: the module, the stage, the expression and the problem.

Every failure inside the engine reaches the user as a ``DeriveError`` whose
message is one line::

    prelu: sift: dX_pq = Σ_sj ...: <what is wrong>

``stage`` wraps the work of one stage: any exception SymPy (or a rule) raises
inside it becomes a ``DeriveError`` naming that stage; ``require_finite``
catches a ``zoo``, ``nan`` or ``oo`` at the stage that produced it.
"""
from __future__ import annotations

import contextlib

import sympy as sp

from . import budget
from .text import index_text

# The stages of a derivation, in order.
STAGES = ("check", "differentiate", "sift", "rewrite", "lower", "numerics", "print", "verify")
MAX_EXPRESSION = 160  # characters of an expression quoted in an error line


class DeriveError(ValueError):
    def __init__(self, module: str, stage: str, expression, problem: str):
        if stage not in STAGES:  # a line names one of the stages the docs list
            raise ValueError(f"unknown stage {stage!r}")
        text = expression if isinstance(expression, str) else index_text(expression)
        text = " ".join(text.split())
        if len(text) > MAX_EXPRESSION:
            text = text[:MAX_EXPRESSION - 1] + "…"
        self.module, self.stage, self.expression, self.problem = module, stage, text, problem
        super().__init__(" ".join(f"{module}: {stage}: {text}: {problem}".split()))


class PrintError(ValueError):
    """A statement that cannot be lowered to array operations or spelled by a backend; the message is one line."""


@contextlib.contextmanager
def stage(module: str, name: str, expression):
    """Run one stage; anything but a DeriveError becomes one naming ``module``, ``name`` and ``expression``."""
    try:
        yield
    except DeriveError:
        raise
    except budget.ModuleOutOfTime:
        raise DeriveError(module, name, expression, f"ran past the budget of {budget.MODULE_SECONDS:g} s of "
                                                    "CPU for one module (the forward is too large for the engine's "
                                                    "rewrites: split it into lets or modules)") from None
    except RecursionError:
        raise DeriveError(module, name, expression, "the expression is too deeply nested for SymPy") from None
    except Exception as e:  # a SymPy failure deep in a rule: keep one line
        raise DeriveError(module, name, expression, f"{type(e).__name__}: {e}") from e


NOT_FINITE = (sp.zoo, sp.nan, sp.oo, -sp.oo)


def require_finite(module: str, name: str, lhs, expr):
    """A derived expression holding ``zoo``, ``nan`` or ``oo`` is an error of the stage that made it."""
    if any(expr.has(v) for v in NOT_FINITE):
        bad = next(str(v) for v in NOT_FINITE if expr.has(v))
        where = f"{index_text(lhs)} = {index_text(expr)}" if lhs is not None else expr
        raise DeriveError(module, name, where, f"the result holds {bad} (a division by zero or an undefined limit)")
    return expr
