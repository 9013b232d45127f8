"""Names the engine itself uses, taken by the user: a tensor `name`, scalars `backend`, `module`, `fn`, `env`, `upstream`."""
import sympy as sp
from derive.engine.notation import Forward, Sum
forward = Forward("engine_names", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
upstream = forward.scalar("upstream", 2.0)
module = forward.scalar("module", 0.5)
env = forward.integer("env", 1, minimum=1)
name = forward.input("name", S, D)
fn = forward.param("fn", D)
forward.output("Y", (s, j), upstream * sp.tanh(name[s, j] * fn[j]) + module * env)
