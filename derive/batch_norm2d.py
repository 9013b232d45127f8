"""Batch normalisation of images, per channel over batch, height and width (training mode, biased variance).

    μ_c  = (1/(S H W)) Σ_{s,h,w} X_schw
    σ²_c = (1/(S H W)) Σ_{s,h,w} (X_schw − μ_c)²
    X̂_schw = (X_schw − μ_c) / √(σ²_c + ε)
    Y_schw = γ_c X̂_schw + β_c

Eval mode normalises with running statistics instead (variant ``eval``).
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("batch_norm2d", __doc__)
S, C, H, W = forward.dims("S C H W")
s, c, h, w = forward.indices(s=S, c=C, h=H, w=W)
eps = forward.scalar("eps", 1e-5, latex=r"\varepsilon")
X = forward.input("X", S, C, H, W)
gamma = forward.param("gamma", C, latex=r"\gamma")
beta = forward.param("beta", C, latex=r"\beta")
mean = forward.let("mean", (c,), Sum(X[s, c, h, w], s, h, w) / (S * H * W), latex=r"\mu", returned=True)
var = forward.let("var", (c,), Sum((X[s, c, h, w] - mean[c]) ** 2, s, h, w) / (S * H * W),
                  latex=r"\sigma^2", returned=True)
Xhat = forward.let("Xhat", (s, c, h, w), (X[s, c, h, w] - mean[c]) / sp.sqrt(var[c] + eps), latex=r"\hat{X}")
forward.output("Y", (s, c, h, w), gamma[c] * Xhat[s, c, h, w] + beta[c])

evaluation = forward.variant("eval")
Xe = evaluation.input("X", S, C, H, W)
g = evaluation.param("gamma", C)
bt = evaluation.param("beta", C)
rm = evaluation.const("running_mean", C, latex=r"\hat{\mu}")
rv = evaluation.const("running_var", C, latex=r"\hat{\sigma}^2")
evaluation.output("Y", (s, c, h, w), g[c] * (Xe[s, c, h, w] - rm[c]) / sp.sqrt(rv[c] + eps) + bt[c])
