"""cartsim: mechanistic simulator of CD7-targeted CAR-T therapy (placeholder init, lead rewrites)."""
__version__ = "0.1.0"


class CartsimWarning(UserWarning):
    """Warnings issued by cartsim."""
