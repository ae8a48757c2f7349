"""The version of fsrbench (one place; ``fsrbench.__version__`` and the weight cards read it)."""
__version__ = "0.1.0"
