"""aiida-reactmlip: can I trust a universal MLIP for my reaction, and how few DFT calculations fix it?"""

__version__ = "0.1.0"
