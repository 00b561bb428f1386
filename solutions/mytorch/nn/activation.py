"""Activation functions for mytorch, written with numpy.

Every activation is a small class with two methods:

* ``forward(Z)`` takes the pre-activation ``Z`` (usually shape ``(N, C)``: a
  batch of ``N`` samples with ``C`` features each), computes the
  post-activation ``A``, stores it in ``self.A`` (and anything else backward
  needs) and returns ``A``.
* ``backward(dLdA)`` takes how the loss changes with ``A`` and returns
  ``dLdZ``, how the loss changes with ``Z``.

Scalar (element-wise) activations work on arrays of any shape and use

    dLdZ = dLdA * dAdZ

where ``dAdZ`` is the derivative of the activation evaluated element by
element. Softmax is a vector activation: each row of ``A`` depends on the
whole row of ``Z``, so backward multiplies each row of ``dLdA`` by that row's
``C x C`` Jacobian ``J``.

The values, including the derivative at a kink (for example ReLU at Z = 0),
follow PyTorch's ``torch.nn.functional``. Do not change the class names or
the method signatures: the autograder calls them.
"""

import math

import numpy as np
from scipy.special import erf

### BEGIN SOLUTION


def _sigmoid(X):
    # exp(-|X|) never overflows, so neither branch can warn for large |X|.
    E = np.exp(-np.abs(X))
    return np.where(X >= 0, 1.0 / (1.0 + E), E / (1.0 + E))


def _softplus(X):
    # log(1 + e^X) without overflow: logaddexp(0, X).
    return np.logaddexp(0.0, X)


### END SOLUTION


class Identity:
    """Identity: A = Z, so dAdZ = 1 everywhere.

    This one is given complete as an example of the pattern the others
    follow; no need to modify it.
    """

    def forward(self, Z):
        self.A = Z
        return self.A

    def backward(self, dLdA):
        dAdZ = np.ones(self.A.shape, dtype="f")
        dLdZ = dLdA * dAdZ
        return dLdZ


class Sigmoid:
    """Sigmoid: A = 1 / (1 + exp(-Z)), element-wise.

    Derivative: dAdZ = A * (1 - A), written with the stored output A.
    Make forward safe for large |Z| (for example Z = -1000 must not
    overflow ``np.exp``).
    """

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.A = _sigmoid(Z)
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("Sigmoid.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        dAdZ = self.A * (1.0 - self.A)
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("Sigmoid.backward")
        ### END SOLUTION
        return dLdZ


class Tanh:
    """Tanh: A = (exp(Z) - exp(-Z)) / (exp(Z) + exp(-Z)), element-wise.

    Write it from exponentials: ``np.tanh`` (or any other ready-made tanh)
    is not allowed in this class. Keep it finite for large |Z|.

    Derivative: dAdZ = 1 - A**2.
    """

    def forward(self, Z):
        ### BEGIN SOLUTION
        # tanh|Z| = (1 - e^{-2|Z|}) / (1 + e^{-2|Z|}); expm1 keeps small |Z| exact.
        M = np.expm1(-2.0 * np.abs(Z))
        self.A = np.sign(Z) * (-M / (2.0 + M))
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("Tanh.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        dAdZ = 1.0 - self.A * self.A
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("Tanh.backward")
        ### END SOLUTION
        return dLdZ


class ReLU:
    """ReLU: A = max(0, Z), element-wise.

    Derivative: dAdZ = 1 where Z > 0 and 0 where Z <= 0 (PyTorch uses 0 at
    exactly Z = 0).
    """

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.A = np.maximum(Z, 0)
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("ReLU.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        dAdZ = (self.A > 0).astype(self.A.dtype)
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("ReLU.backward")
        ### END SOLUTION
        return dLdZ


class LeakyReLU:
    """Leaky ReLU: A = Z where Z > 0, alpha * Z elsewhere.

    Derivative: dAdZ = 1 where Z > 0, alpha where Z <= 0 (alpha at Z = 0).
    ``alpha`` defaults to 0.01, as in PyTorch.
    """

    def __init__(self, alpha=0.01):
        self.alpha = alpha

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        self.A = np.where(Z > 0, Z, self.alpha * Z)
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("LeakyReLU.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        dAdZ = np.where(self.Z > 0, 1.0, self.alpha)
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("LeakyReLU.backward")
        ### END SOLUTION
        return dLdZ


class ELU:
    """ELU: A = Z where Z > 0, alpha * (exp(Z) - 1) elsewhere.

    Derivative: dAdZ = 1 where Z > 0, alpha * exp(Z) where Z <= 0.
    ``alpha`` defaults to 1.0. Large positive Z must not overflow.
    """

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        # Only the non-positive part goes through exp, so nothing overflows.
        self.A = np.where(Z > 0, Z, self.alpha * np.expm1(np.minimum(Z, 0)))
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("ELU.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        dAdZ = np.where(self.Z > 0, 1.0, self.alpha * np.exp(np.minimum(self.Z, 0)))
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("ELU.backward")
        ### END SOLUTION
        return dLdZ


class CELU:
    """CELU: A = max(0, Z) + min(0, alpha * (exp(Z / alpha) - 1)).

    Derivative: dAdZ = 1 where Z > 0, exp(Z / alpha) where Z <= 0.
    ``alpha`` defaults to 1.0 (where CELU and ELU coincide).
    """

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        negative = self.alpha * np.expm1(np.minimum(Z, 0) / self.alpha)
        self.A = np.maximum(Z, 0) + np.minimum(negative, 0)
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("CELU.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        dAdZ = np.where(self.Z > 0, 1.0, np.exp(np.minimum(self.Z, 0) / self.alpha))
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("CELU.backward")
        ### END SOLUTION
        return dLdZ


class GELU:
    """GELU, the exact form: A = Z * Phi(Z) = Z / 2 * (1 + erf(Z / sqrt(2))).

    Phi is the standard normal CDF and phi its density,
    phi(Z) = exp(-Z**2 / 2) / sqrt(2 * pi).
    Derivative: dAdZ = Phi(Z) + Z * phi(Z).
    Use ``erf`` from ``scipy.special`` (imported above), not the tanh
    approximation.
    """

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        self.A = 0.5 * Z * (1.0 + erf(Z / math.sqrt(2.0)))
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("GELU.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        Z = self.Z
        Phi = 0.5 * (1.0 + erf(Z / math.sqrt(2.0)))
        phi = np.exp(-0.5 * Z * Z) / math.sqrt(2.0 * math.pi)
        dAdZ = Phi + Z * phi
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("GELU.backward")
        ### END SOLUTION
        return dLdZ


class Swish:
    """Swish: A = Z * sigmoid(beta * Z), with a learnable scalar beta.

    With s = sigmoid(beta * Z):
        dAdZ     = s + beta * Z * s * (1 - s)
        dAdbeta  = Z**2 * s * (1 - s)
    backward returns dLdZ = dLdA * dAdZ and also stores
        self.dLdbeta = sum over the whole batch of dLdA * dAdbeta
    as a single number (beta is shared by every element).
    ``beta`` defaults to 1.0 (PyTorch's SiLU).
    """

    def __init__(self, beta=1.0):
        self.beta = beta

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        self.s = _sigmoid(self.beta * Z)
        self.A = Z * self.s
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("Swish.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        Z, s = self.Z, self.s
        # 1 - s = sigmoid(-beta Z), computed directly: the subtraction loses every
        # digit once s rounds to 1 (|beta Z| beyond ~17 in float32).
        r = _sigmoid(-self.beta * Z)
        dAdZ = s + self.beta * Z * s * r
        dLdZ = dLdA * dAdZ
        self.dLdbeta = np.sum(dLdA * Z * Z * s * r)
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| self.dLdbeta = None  # TODO: one number, summed over the batch
        #| raise NotImplementedError("Swish.backward")
        ### END SOLUTION
        return dLdZ


class Softplus:
    """Softplus: A = (1 / beta) * log(1 + exp(beta * Z)).

    Where beta * Z > threshold the result is Z itself (as in PyTorch), which
    also keeps exp from overflowing.
    Derivative: dAdZ = sigmoid(beta * Z), and 1 where beta * Z > threshold.
    """

    def __init__(self, beta=1.0, threshold=20.0):
        self.beta = beta
        self.threshold = threshold

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        bZ = self.beta * Z
        # Clipping at the threshold keeps exp finite; those entries take Z anyway.
        smooth = np.log1p(np.exp(np.minimum(bZ, self.threshold))) / self.beta
        self.A = np.where(bZ > self.threshold, Z, smooth)
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("Softplus.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        bZ = self.beta * self.Z
        E = np.exp(np.minimum(bZ, self.threshold))
        dAdZ = np.where(bZ > self.threshold, 1.0, E / (E + 1.0))
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("Softplus.backward")
        ### END SOLUTION
        return dLdZ


class Mish:
    """Mish: A = Z * tanh(softplus(Z)), with softplus(Z) = log(1 + exp(Z)).

    With t = tanh(softplus(Z)):
        dAdZ = t + Z * sigmoid(Z) * (1 - t**2)
    (the second term is the chain rule through tanh and softplus).
    """

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        self.t = np.tanh(_softplus(Z))
        self.A = Z * self.t
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("Mish.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        Z, t = self.Z, self.t
        dAdZ = t + Z * _sigmoid(Z) * (1.0 - t * t)
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("Mish.backward")
        ### END SOLUTION
        return dLdZ


class Hardswish:
    """Hardswish: A = Z * relu6(Z + 3) / 6, with relu6(x) = min(max(0, x), 6).

    Derivative (PyTorch's choice at the edges):
        0            where Z <= -3
        (2Z + 3) / 6 where -3 < Z < 3
        1            where Z >= 3
    """

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        self.A = Z * np.minimum(np.maximum(Z + 3.0, 0.0), 6.0) / 6.0
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("Hardswish.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        Z = self.Z
        middle = (2.0 * Z + 3.0) / 6.0
        dAdZ = np.where(Z <= -3.0, 0.0, np.where(Z < 3.0, middle, 1.0))
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("Hardswish.backward")
        ### END SOLUTION
        return dLdZ


class ReLU6:
    """ReLU6: A = min(max(0, Z), 6), element-wise.

    Derivative: dAdZ = 1 where 0 < Z < 6, else 0 (0 at both Z = 0 and Z = 6).
    """

    def forward(self, Z):
        ### BEGIN SOLUTION
        self.Z = Z
        self.A = np.minimum(np.maximum(Z, 0.0), 6.0)
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("ReLU6.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        dAdZ = ((self.Z > 0) & (self.Z < 6)).astype(np.float64)
        dLdZ = dLdA * dAdZ
        ### STUB
        #| dAdZ = None  # TODO
        #| dLdZ = None  # TODO
        #| raise NotImplementedError("ReLU6.backward")
        ### END SOLUTION
        return dLdZ


class Softmax:
    """Softmax over each row: A[i, j] = exp(Z[i, j]) / sum_k exp(Z[i, k]).

    Z and A have shape (N, C); every row of A is a probability distribution.
    Subtracting the row maximum from Z first gives the same A and keeps
    ``np.exp`` from overflowing (think of Z = [1000, 1001, 1002]).

    Softmax is a vector activation, so backward needs, for every sample i,
    the C x C Jacobian of that row:
        J[m, n] = A[i, m] * (1 - A[i, m])   if m == n
        J[m, n] = -A[i, m] * A[i, n]        if m != n
    and then dLdZ[i, :] = dLdA[i, :] @ J.
    """

    def forward(self, Z):
        ### BEGIN SOLUTION
        E = np.exp(Z - np.max(Z, axis=1, keepdims=True))
        self.A = E / np.sum(E, axis=1, keepdims=True)
        ### STUB
        #| self.A = None  # TODO
        #| raise NotImplementedError("Softmax.forward")
        ### END SOLUTION
        return self.A

    def backward(self, dLdA):
        ### BEGIN SOLUTION
        # Row by row, dLdA_i @ J_i = A_i * (dLdA_i - <dLdA_i, A_i>): the same
        # product, with no C x C matrix and no Python loop over the batch.
        A = self.A
        dLdZ = A * (dLdA - np.sum(dLdA * A, axis=1, keepdims=True))
        ### STUB
        #| raise NotImplementedError("Softmax.backward")  # remove when you start
        #|
        #| # The batch size and the number of classes.
        #| N = None  # TODO
        #| C = None  # TODO
        #|
        #| # dLdZ has the same shape as dLdA; fill it one row (sample) at a time.
        #| dLdZ = None  # TODO
        #|
        #| for i in range(N):
        #|     # The C x C Jacobian of row i, built from the row self.A[i].
        #|     # The docstring gives J[m, n] for m == n and for m != n.
        #|     J = None  # TODO
        #|
        #|     # Row i of dLdA is 1 x C and J is C x C: which product of the two
        #|     # gives the 1 x C row dLdZ[i]?
        #|     dLdZ[i, :] = None  # TODO
        ### END SOLUTION
        return dLdZ
