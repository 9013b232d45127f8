"""Independent PyTorch references for the user forwards in this folder.

Each function takes the module's tensors (float64) and scalars as keyword
arguments, named as in the forward, and returns the module's output.
"""
import math

import torch
import torch.nn.functional as F


def hard_tanh(*, X):
    return F.hardtanh(X, -1.0, 1.0)


def hard_sigmoid(*, X):
    # F.hardsigmoid's backward multiplies by 1/6 rounded to float32 (relative error 3e-8 in float64).
    return torch.clamp(X / 6 + 0.5, 0.0, 1.0)


def relu6(*, X):
    return F.relu6(X)


def hard_swish(*, X):
    return F.hardswish(X)


def prelu(*, X, a):
    return F.prelu(X, a)


def gelu_exact(*, X):
    return F.gelu(X, approximate="none")


def mish(*, X):
    return F.mish(X)


def gelu_tanh(*, X):
    return F.gelu(X, approximate="tanh")


def selu(*, X, scale, alpha):
    return scale * F.elu(X, alpha=alpha)


def bce_logits(*, X, T):
    return F.binary_cross_entropy_with_logits(X, T, reduction="sum") / X.shape[0]


def huber(*, X, T, delta):
    return F.huber_loss(X, T, reduction="sum", delta=delta) / X.shape[0]


def smooth_l1(*, X, T, beta):
    return F.smooth_l1_loss(X, T, reduction="sum", beta=beta) / X.shape[0]


def ce_int_labels(*, X, y):
    return F.cross_entropy(X, y)


def embedding(*, t, E):
    return F.embedding(t, E)


def embedding_bag(*, t, E):
    return F.embedding_bag(t, E, mode="sum")


def label_gain(*, X, y, g):
    return g[y] * X.gather(1, y[:, None])[:, 0]


def bigram_score(*, a, b, W):
    return W[a, b]


def kl_div_logits(*, X, T):
    return F.kl_div(F.log_softmax(X, dim=-1), T, reduction="batchmean")


def hinge(*, X, T):
    return F.relu(1 - T * X).mean()


def glu_gate(*, A, B):
    return F.glu(torch.cat([A, B], dim=-1), dim=-1)


def gated_memory(*, X, C, W):
    return torch.sigmoid(F.linear(X, W)) * C


def gated_memory_gain(*, X, C, W, gamma):
    return torch.sigmoid(F.linear(X, W)) * C * gamma


def highway_mix(*, X, G):
    T = torch.sigmoid(G)
    return T * torch.tanh(X) + (1 - T) * X


def peephole_rows(*, X, p):
    return X * p[0] + p[1]


def sigmoid_of_contraction(*, X, h0, W):
    return h0 * torch.sigmoid(F.linear(X, W))


def tanh_of_contraction(*, X, G, W):
    return G[:, None] * torch.tanh(F.linear(X, W))


def chained_tanh_layers(*, X, W, V):
    return torch.tanh(F.linear(torch.tanh(F.linear(X, W)), V))


def gated_linear(*, X, W, b, V, c):
    return F.linear(X, W, b) * torch.sigmoid(F.linear(X, V, c))


def bilinear(*, X1, X2, W, b):
    return F.bilinear(X1, X2, W, b)


def cosine_sim(*, A, B):
    return F.cosine_similarity(A, B, dim=1, eps=1e-300)


def softmax_hw(*, X):
    return torch.softmax(X, dim=-1)


def channel_affine(*, X, gamma, beta):
    return X * gamma[None, :, None] + beta[None, :, None]


def softmax_temperature(*, X, tau):
    return torch.softmax(X / tau, dim=-1)


def attention_weights(*, Q, K):
    return torch.softmax(Q @ K.T / math.sqrt(Q.shape[1]), dim=-1)


def gain_softplus(*, X, gamma):
    return gamma * F.softplus(X)


def gain_sigmoid(*, X, gamma):
    return gamma * torch.sigmoid(X)


def power_decay(*, X):
    return torch.pow(torch.tensor(2.0 / 3.0, dtype=X.dtype), X)


def mean_output(*, X):
    return X.sum() / X.shape[0]


def rms_norm_scale(*, X, r_scale, eps):
    return r_scale * X / torch.sqrt((X ** 2).mean(dim=1, keepdim=True) + eps)


def two_offsets(*, Z, U, V, g):
    return Z * g + U + 3 * V


def two_decays(*, X):
    return torch.pow(torch.tensor(2.0 / 3.0, dtype=X.dtype), X) + torch.pow(torch.tensor(0.6, dtype=X.dtype), X)


def squared_total(*, X):
    return X.sum() ** 2


def conv1d_valid(*, X, W, b):
    return F.conv1d(X, W, b)


def dilated_conv1d(*, X, W, stride, dilation, padding):
    return F.conv1d(X, W, None, stride=stride, padding=padding, dilation=dilation)


def avg_pool2d(*, X, k):
    return F.avg_pool2d(X, k)


def forward_difference(*, X):
    return torch.cat([X[:, 1:], torch.zeros_like(X[:, :1])], dim=1) - X


def max_pool1d(*, X):
    return F.max_pool1d(X, 3, 2, 1)


def conv3d(*, X, W, b, stride, padding):
    return F.conv3d(X, W, b, stride=stride, padding=padding)


def tv_loss(*, X):
    shifted = torch.cat([X[:, 1:], torch.zeros_like(X[:, :1])], dim=1)
    return ((shifted - X) ** 2).sum() / X.shape[0]


def causal_conv1d(*, X, W):
    K = W.shape[2]
    # Y[h] = Σ_i X[h − i] W[i]: conv1d correlates, so flip the kernel and pad K − 1 on the left.
    return F.conv1d(F.pad(X, (K - 1, 0)), W.permute(1, 0, 2).flip(2))


def scaled_max_pool(*, X, g, kernel_size, stride, padding):
    scaled = g[None, :, None] * X
    padded = F.pad(scaled, (padding, padding), value=-math.inf)
    return torch.tanh(padded.unfold(2, kernel_size, stride).amax(dim=3))


def window_logsumexp(*, X, k):
    padded = F.pad(X, (0, k - 1))   # past the end reads 0
    return torch.logsumexp(padded.unfold(1, k, 1), dim=2)


def reverse_features(*, X, w):
    return w * X.flip(1)


def max_exp_pool(*, X):
    return F.max_pool1d(torch.exp(X)[:, None, :], 3, 2, 1)[:, 0, :]


def pair_ratio(*, X):
    n = X.shape[1] // 2
    return X[:, 0:2 * n:2] / X[:, 1:2 * n:2]


def max_of_difference(*, X):
    diff = X[:, :-1] - X[:, 1:]                     # T − 1 differences; To = T − 2 windows of two
    return torch.maximum(diff[:, :-1], diff[:, 1:])


def dilated_max_pool1d(*, X):
    # window 2, dilation 2, padding 1: max(X[t - 1], X[t + 1]), -inf off the ends. Not F.max_pool1d: where a
    # window lies wholly in the padding (T = 1) its arg-max points past the array.
    padded = F.pad(X, (1, 1), value=-math.inf)
    return torch.maximum(padded[:, :, :-2], padded[:, :, 2:])


def odd_positions_loss(*, X):
    return X[:, 1::2].sum()


def conv_read_ahead(*, X, W):
    K = W.shape[2]
    return F.conv1d(F.pad(X, (0, K + 2))[:, :, 3:], W)


def names_best_at(*, best, at):
    return torch.exp(F.pad(best, (1, 1), value=-math.inf)).unfold(1, 3, 2).amax(-1) * at[:, None]


def pooled_tanh(*, X):
    return torch.tanh(F.max_pool1d(X, 2, 2)).permute(0, 2, 1)


def relu_row_sum(*, X, w):
    return (F.relu(X) * w).sum(1)


def l1_rows(*, X):
    return X.abs().sum(1)


def nested_relu_sums(*, X, w, v):
    return ((F.relu(X) * w).sum(2) * v).sum(1)



# -- the layers of a CNN homework (issue 15): transposed convolutions, resampling, pools, shapes ------------

def conv_transpose1d(*, A, W, b, stride, padding, output_padding):
    return F.conv_transpose1d(A, W, b, stride=stride, padding=padding, output_padding=output_padding)


def conv_transpose2d(*, A, W, stride, padding):
    return F.conv_transpose2d(A, W, stride=stride, padding=padding)


def _zero_insert(A, factor, length, axis):
    """A with factor − 1 zeros after each entry along ``axis``, cut or zero-filled to ``length``."""
    shape = list(A.shape)
    shape[axis] = length
    out = A.new_zeros(shape)
    index = [slice(None)] * A.dim()
    index[axis] = slice(0, length, factor)
    n = len(range(0, length, factor))
    out[tuple(index)] = A.narrow(axis, 0, n)
    return out


def upsample_zeros1d(*, A, factor):
    return _zero_insert(A, factor, factor * A.shape[2], 2)


def upsample_zeros2d(*, A, factor):
    rows = _zero_insert(A, factor, factor * (A.shape[2] - 1) + 1, 2)
    return 2 * _zero_insert(rows, factor, factor * (A.shape[3] - 1) + 1, 3)


def downsample1d(*, A, factor):
    return A[:, :, ::factor]


def downsample2d(*, A, factor):
    return A[:, :, ::factor, ::factor]


def mean_pool1d(*, X, kernel):
    return F.avg_pool1d(X, kernel, stride=1)


def max_pool2d_s1(*, X):
    return F.max_pool2d(X, 2, stride=1)


def conv1d_range(*, X, W, b):
    return F.conv1d(X, W, b)


def pair_product(*, X):
    return X[:, 0::2] * X[:, 1::2]


def flatten_linear(*, X, W, b):
    return F.linear(X.flatten(1), W.flatten(1), b)


def engine_names(*, name, fn, upstream, module, env):
    return upstream * torch.tanh(name * fn) + module * env


# -- exponential sums shifted wherever they stand (issue 15, item 4) -------------------------------------------

def log_softmax_inline(*, X):
    return F.log_softmax(X, dim=-1)


def softmax_inline_temperature(*, X, tau):
    return torch.softmax(X / tau, dim=-1)


def label_smoothing_ce(*, X, T, eps):
    return F.cross_entropy(X, T, label_smoothing=eps)


def masked_softmax(*, X, M):
    # M exp(X) / Σ M exp(X) is the softmax of X + log M (M > 0 in the drawn inputs).
    return torch.softmax(X + torch.log(M), dim=-1)


def masked_softmax_named(*, X, M):
    return masked_softmax(X=X, M=M)


def masked_logsumexp(*, X, M):
    # log Σ M exp(X) is the log-sum-exp of X + log M (−inf where M = 0).
    return torch.logsumexp(X + torch.log(M), dim=-1)


def softmax_two_axes(*, X):
    return torch.softmax(X.flatten(1), dim=-1).reshape(X.shape)


def attention(*, Q, K, V):
    return F.scaled_dot_product_attention(Q, K, V, scale=1.0)



def scanning_mlp(*, X, W1, W2, stride):
    return torch.einsum("smt,om->sot", F.relu(F.conv1d(X, W1, stride=stride)), W2)


def conv_relu1d(*, X, W, b, padding):
    return F.relu(F.conv1d(X, W, b, padding=padding))



def weight_norm_linear(*, X, V, g, b):
    return F.linear(X, g[:, None] * V / V.norm(dim=1, keepdim=True), b)



def learned_window(*, X, g, k):
    return F.conv1d(X[:, None], g[None, None])[:, 0]


def group_sum(*, X, k):
    return X.reshape(X.shape[0], -1, k).sum(-1)



def abs_relu_sum(*, X, w):
    return (F.relu(X) @ w).abs().sum()



def first_differences(*, X, g):
    return g * (X[:, 1:] - X[:, :-1])



# -- failure kinds the forward fuzzer found (tests/fuzzing/) -------------------------------------------------

def _shift(X, by):
    """X[:, j + by] along the last axis, zero where that falls off the tensor."""
    out = torch.zeros_like(X)
    if by > 0:
        out[:, :-by] = X[:, by:]
    elif by < 0:
        out[:, -by:] = X[:, :by]
    else:
        out = X
    return out


def shifted_read_in_max(*, X):
    return torch.maximum(_shift(X, 1), X)


def indicator_sum_precedence(*, X, alpha):
    return (X / alpha + _shift(X, -1)).sum()


def indicator_sum_precedence_reversed(*, X):
    return (X.flip(1) + X).sum(1)


def indicator_precedence_reversed_read(*, X, c):
    return torch.tanh(X.flip(1) * c)


def piecewise_scalar_condition(*, X, v, alpha):
    # v in the graph either way: its gradient is zero when the other branch is taken.
    chosen = _shift(X, -1) + 0 * v[:, None] if alpha > 0.5 else v[:, None].expand_as(X)
    h0 = torch.clamp(chosen, min=math.copysign(1.0, alpha)).sum() / X.shape[0]
    return torch.maximum(h0, X).sum(1)


def no_docstring(*, X):
    return torch.tanh(X)



def pool_scalar_loss(*, X):
    return F.max_pool1d(X, 2, stride=1).sum()


def pool_scalar_loss_inline(*, X, stride):
    return F.max_pool1d(X, 2, stride=stride).sum()



def attention_named_sum(*, Q, K, V):
    return torch.softmax(Q @ K.T / math.sqrt(Q.shape[1]), dim=1) @ V


def ce_temp_labels(*, X, y, tau):
    return F.cross_entropy(X / tau, y)



def reversed_padded(*, A, pad):
    return F.pad(A.flip(1), (pad, pad))



def embedding_head(*, E, g, t):
    return F.embedding(t, E)[:, :-1] * g


def glu_half(*, X):
    return F.glu(X, dim=1)


def squared_window_max(*, X):
    return F.max_pool1d(X, 2, 2) ** 2


def pooled_erfc(*, X):
    return torch.special.erfc(F.max_pool1d(X, 2, 2)).sum()


def pooled_logsumexp(*, X):
    return torch.logsumexp(F.max_pool1d(X, 2, 2).flatten(1), 1)


def scalar_select_branches(*, c, v, alpha):
    chosen = torch.where(torch.tensor(alpha > 1 / 3), c[None, :], v[:, None])   # both in the graph: dv = 0
    return (chosen ** 2).sum(1)


REFERENCES = {
    "hard_tanh": hard_tanh,
    "hard_sigmoid": hard_sigmoid,
    "relu6": relu6,
    "hard_swish": hard_swish,
    "prelu": prelu,
    "gelu_exact": gelu_exact,
    "mish": mish,
    "gelu_tanh": gelu_tanh,
    "selu": selu,
    "bce_logits": bce_logits,
    "huber": huber,
    "smooth_l1": smooth_l1,
    "kl_div_logits": kl_div_logits,
    "ce_int_labels": ce_int_labels,
    "embedding": embedding,
    "embedding_bag": embedding_bag,
    "label_gain": label_gain,
    "bigram_score": bigram_score,
    "hinge": hinge,
    "glu_gate": glu_gate,
    "gated_linear": gated_linear,
    "gated_memory": gated_memory,
    "gated_memory_gain": gated_memory_gain,
    "highway_mix": highway_mix,
    "peephole_rows": peephole_rows,
    "sigmoid_of_contraction": sigmoid_of_contraction,
    "tanh_of_contraction": tanh_of_contraction,
    "chained_tanh_layers": chained_tanh_layers,
    "bilinear": bilinear,
    "cosine_sim": cosine_sim,
    "softmax_hw": softmax_hw,
    "channel_affine": channel_affine,
    "softmax_temperature": softmax_temperature,
    "attention_weights": attention_weights,
    "gain_softplus": gain_softplus,
    "gain_sigmoid": gain_sigmoid,
    "power_decay": power_decay,
    "mean_output": mean_output,
    "rms_norm_scale": rms_norm_scale,
    "two_offsets": two_offsets,
    "two_decays": two_decays,
    "squared_total": squared_total,
    "conv1d_valid": conv1d_valid,
    "dilated_conv1d": dilated_conv1d,
    "avg_pool2d": avg_pool2d,
    "forward_difference": forward_difference,
    "max_pool1d": max_pool1d,
    "conv3d": conv3d,
    "tv_loss": tv_loss,
    "causal_conv1d": causal_conv1d,
    "scaled_max_pool": scaled_max_pool,
    "window_logsumexp": window_logsumexp,
    "reverse_features": reverse_features,
    "max_exp_pool": max_exp_pool,
    "pair_ratio": pair_ratio,
    "max_of_difference": max_of_difference,
    "dilated_max_pool1d": dilated_max_pool1d,
    "odd_positions_loss": odd_positions_loss,
    "conv_read_ahead": conv_read_ahead,
    "names_best_at": names_best_at,
    "pooled_tanh": pooled_tanh,
    "relu_row_sum": relu_row_sum,
    "l1_rows": l1_rows,
    "nested_relu_sums": nested_relu_sums,
    "conv_transpose1d": conv_transpose1d,
    "conv_transpose2d": conv_transpose2d,
    "upsample_zeros1d": upsample_zeros1d,
    "upsample_zeros2d": upsample_zeros2d,
    "downsample1d": downsample1d,
    "downsample2d": downsample2d,
    "mean_pool1d": mean_pool1d,
    "max_pool2d_s1": max_pool2d_s1,
    "conv1d_range": conv1d_range,
    "pair_product": pair_product,
    "flatten_linear": flatten_linear,
    "engine_names": engine_names,
    "log_softmax_inline": log_softmax_inline,
    "softmax_inline_temperature": softmax_inline_temperature,
    "label_smoothing_ce": label_smoothing_ce,
    "masked_softmax": masked_softmax,
    "masked_softmax_named": masked_softmax_named,
    "masked_logsumexp": masked_logsumexp,
    "softmax_two_axes": softmax_two_axes,
    "attention": attention,
    "scanning_mlp": scanning_mlp,
    "conv_relu1d": conv_relu1d,
    "weight_norm_linear": weight_norm_linear,
    "learned_window": learned_window,
    "group_sum": group_sum,
    "abs_relu_sum": abs_relu_sum,
    "first_differences": first_differences,
    "shifted_read_in_max": shifted_read_in_max,
    "indicator_sum_precedence": indicator_sum_precedence,
    "indicator_sum_precedence_reversed": indicator_sum_precedence_reversed,
    "indicator_precedence_reversed_read": indicator_precedence_reversed_read,
    "piecewise_scalar_condition": piecewise_scalar_condition,
    "no_docstring": no_docstring,
    "pool_scalar_loss": pool_scalar_loss,
    "pool_scalar_loss_inline": pool_scalar_loss_inline,
    "attention_named_sum": attention_named_sum,
    "ce_temp_labels": ce_temp_labels,
    "reversed_padded": reversed_padded,
    "embedding_head": embedding_head,
    "glu_half": glu_half,
    "squared_window_max": squared_window_max,
    "pooled_erfc": pooled_erfc,
    "pooled_logsumexp": pooled_logsumexp,
    "scalar_select_branches": scalar_select_branches,
}


def pool_of_conv(*, X, W, b):
    return F.max_pool1d(F.conv1d(X, W, b), 2, 2)


def mean_and_var(*, X):
    var, mean = torch.var_mean(X, dim=1, unbiased=False)
    return mean, var


def linear_tanh(*, X, W, b):
    return torch.tanh(F.linear(X, W, b))

REFERENCES.update(pool_of_conv=pool_of_conv, mean_and_var=mean_and_var, linear_tanh=linear_tanh)


def act_reg(*, X, W):
    Y = torch.tanh(X @ W.T)
    return Y, (Y ** 2).sum()


REFERENCES.update(act_reg=act_reg)


def onehot_pick(*, X, y):
    return torch.tanh(X)[torch.arange(X.shape[0]), y].mean()


REFERENCES.update(onehot_pick=onehot_pick)


def leaky_rms_norm(*, X, eps):
    return torch.where(X > 0, X, X / 10) / torch.sqrt((X ** 2).mean(dim=1, keepdim=True) + eps)


def energy_log(*, X, eps):
    r = (X ** 2).sum(dim=1)
    return r * torch.log(r + eps)


def normalised_taps(*, X, W, eps):
    n = X[:, 0] / torch.sqrt((X ** 2).mean(dim=1) + eps)      # each step's first channel over its RMS
    return F.conv1d(n[None, None], W[None, None])[0, 0]       # Y_t = Σ_k W_k n_{t+k}


REFERENCES.update(leaky_rms_norm=leaky_rms_norm, energy_log=energy_log, normalised_taps=normalised_taps)


def clamped_rms(*, X, eps):
    return X / torch.sqrt(torch.clamp((X ** 2).mean(dim=1, keepdim=True), min=eps))


REFERENCES.update(clamped_rms=clamped_rms)


def frobenius_distance(*, A, B):
    return torch.sqrt(((A - B) ** 2).sum())


def rbf_layer(*, X, C, gamma):
    return torch.exp(-gamma * ((X[:, None, :] - C[None, :, :]) ** 2).sum(dim=2))


REFERENCES.update(frobenius_distance=frobenius_distance, rbf_layer=rbf_layer)
