"""Detection of a Jupyter kernel."""

__all__ = ["in_notebook"]


def in_notebook() -> bool:
    """Whether the code runs inside a Jupyter kernel (IPython with an `IPKernelApp`).

    Returns:
        `True` inside a Jupyter kernel.
    """
    try:
        from IPython import get_ipython

        return "IPKernelApp" in get_ipython().config
    except (ImportError, AttributeError):
        return False
