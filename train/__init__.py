"""edgeclf.train: from a folder of labelled photos to a fine-tuned MobileNetV2 run directory (needs TensorFlow).

Modules, one job each: dataset (layouts, classes), download (cats_vs_dogs), cache (decode once), splits
(train/validation/test), model (MobileNetV2 + head), pipeline (tf.data + augmentation), fit (two phases, checkpoints,
resume), plots (PNG), run (the whole command). Scoring is edgeclf.runtime.metrics, shared with export and bench.
"""
