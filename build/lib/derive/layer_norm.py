"""Layer normalisation over the feature axis, with a gain and a bias per feature.

    μ_s  = (1/D) Σ_j X_sj
    σ²_s = (1/D) Σ_j (X_sj − μ_s)²
    X̂_sj = (X_sj − μ_s) / √(σ²_s + ε)
    Y_sj = γ_j X̂_sj + β_j
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("layer_norm", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
eps = forward.scalar("eps", 1e-5, latex=r"\varepsilon")
X = forward.input("X", S, D)
gamma = forward.param("gamma", D, latex=r"\gamma")
beta = forward.param("beta", D, latex=r"\beta")
mean = forward.let("mean", (s,), Sum(X[s, j], j) / D, latex=r"\mu")
var = forward.let("var", (s,), Sum((X[s, j] - mean[s]) ** 2, j) / D, latex=r"\sigma^2")
Xhat = forward.let("Xhat", (s, j), (X[s, j] - mean[s]) / sp.sqrt(var[s] + eps), latex=r"\hat{X}")
forward.output("Y", (s, j), gamma[j] * Xhat[s, j] + beta[j])
