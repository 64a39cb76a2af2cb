"""edgeclf: a folder of labelled photos in, a fast quantized classifier for a Raspberry Pi out.

This package holds the CLI and what every stage shares (manifest schema, errors, file and console helpers).
It never imports TensorFlow; the stages live in ``edgeclf.train``, ``edgeclf.export`` and ``edgeclf.runtime``.
"""

__version__ = "0.1.0"
