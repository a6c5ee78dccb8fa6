"""The package's version, alone, so that what reports it (the models' User-Agent) need not
import the package's face."""

__all__ = ["__version__"]

__version__ = "0.1.0"
