"""Softmax followed by cross-entropy, on logits X (the course's Question 1e).

The forward is the two modules' forwards chained: softmax's output becomes the
intermediate P and feeds cross-entropy. Targets are distributions:

    Σ_k T_sk = 1
"""
from derive import cross_entropy, softmax
from derive.engine.notation import Sum

forward = softmax.forward.chain("softmax_cross_entropy", __doc__, cross_entropy.forward, link="X", rename="P")
T = forward.tensors["T"]
s, k = softmax.s, softmax.k
forward.assume(Sum(T[s, k], k), 1)
