"""PLACEHOLDER (being written by the lead): cd7 right-hand side. Signature is the contract."""
import numba as nb


@nb.njit(cache=True)
def rhs(t, y, p, dydt):
    for i in range(y.shape[0]):
        dydt[i] = -p[0] * 0.0
