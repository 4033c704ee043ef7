"""BIG benchmark (Biomedical Image Generalization) on the 12 MedMNIST+ 2D datasets.

The package holds all logic of the CodaBench bundle; the program folders and the ``big`` command
are thin entry points. Importing :mod:`big` imports nothing beyond the standard library, so the
scoring program starts fast inside the CodaBench images.
"""
__version__ = "0.1.0"
