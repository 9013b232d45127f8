"""Batch normalisation over the batch axis, training mode (biased variance).

    μ_j  = (1/S) Σ_s X_sj
    σ²_j = (1/S) Σ_s (X_sj − μ_j)²
    X̂_sj = (X_sj − μ_j) / √(σ²_j + ε)
    Y_sj = γ_j X̂_sj + β_j

Eval mode normalises with running statistics instead (variant ``eval``).
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("batch_norm", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
eps = forward.scalar("eps", 1e-5, latex=r"\varepsilon")
X = forward.input("X", S, D)
gamma = forward.param("gamma", D, latex=r"\gamma")
beta = forward.param("beta", D, latex=r"\beta")
mean = forward.let("mean", (j,), Sum(X[s, j], s) / S, latex=r"\mu", returned=True)
var = forward.let("var", (j,), Sum((X[s, j] - mean[j]) ** 2, s) / S, latex=r"\sigma^2", returned=True)
Xhat = forward.let("Xhat", (s, j), (X[s, j] - mean[j]) / sp.sqrt(var[j] + eps), latex=r"\hat{X}")
forward.output("Y", (s, j), gamma[j] * Xhat[s, j] + beta[j])

evaluation = forward.variant("eval")
Xe = evaluation.input("X", S, D)
g = evaluation.param("gamma", D)
bt = evaluation.param("beta", D)
rm = evaluation.const("running_mean", D, latex=r"\hat{\mu}")
rv = evaluation.const("running_var", D, latex=r"\hat{\sigma}^2")
evaluation.output("Y", (s, j), g[j] * (Xe[s, j] - rm[j]) / sp.sqrt(rv[j] + eps) + bt[j])
