"""edgeclf.export: run directory -> self-describing, accuracy-gated TFLite models.

convert      Keras model -> .tflite (float32, float16, dynamic, int8 with --io uint8|int8|float32), op/tensor facts
calibration  stratified sample of the training split for int8 (never the test split)
metadata     standard TFLite Model Metadata + labels.txt + edgeclf.json packed into the file
validate     the test split (sha256-checked), Keras reference vs. runtime Classifier, accuracy/CI/agreement/latency
report       report.json / report.md / the stderr table, and the gate decision
run          the whole `edgeclf export` command as a function: export_run(ExportOptions(...))
"""
