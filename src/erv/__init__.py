"""erv: emotion-coherent multimodal reasoning (ERV, AAAI 2026) as a library with recipes.

Importing the package is cheap: heavy dependencies (torch, transformers) are imported by the
submodules that need them.
"""

__version__ = "0.1.0"
