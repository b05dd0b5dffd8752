"""PLACEHOLDER (to be written): Stein 2019 right-hand side and Jacobian. Signatures are the contract."""
import numba as nb


@nb.njit(cache=True)
def rhs(t, y, p, dydt):
    for i in range(y.shape[0]):
        dydt[i] = 0.0


@nb.njit(cache=True)
def jac(t, y, p, J):
    for i in range(y.shape[0]):
        for j in range(y.shape[0]):
            J[i, j] = 0.0
