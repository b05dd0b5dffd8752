"""Exact Dataset comparison shared by the sweep tests (a module with a unique name: several
test folders have a conftest.py)."""

import numpy as np
import xarray as xr


def assert_same_values(a: xr.Dataset, b: xr.Dataset, names=None, rtol=1e-12):
    """Same variables, dims, coordinates and values (attrs such as 'created' may differ)."""
    names = list(a.data_vars) if names is None else names
    for n in names:
        x, y = a[n], b[n]
        assert x.dims == y.dims, n
        for d in x.dims:
            np.testing.assert_array_equal(x[d].values, y[d].values, err_msg=f"{n}: {d}")
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x.values, y.values, rtol=rtol, equal_nan=True,
                                       err_msg=n)
        else:
            np.testing.assert_array_equal(x.values, y.values, err_msg=n)
