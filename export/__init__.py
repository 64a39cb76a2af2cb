"""edgeclf.export: run directory -> self-describing, accuracy-gated TFLite models.

convert      Keras model -> .tflite (float32, float16, dynamic, int8 with --io uint8|int8|float32, int16x8), op facts
calibration  stratified sample of the training split for int8 (never the test split)
quantize     calibrate once, then quantize per recipe (what stays float: the quantizer's denylists); 16x8
recipes      the int8 recipes and the order --int8 tries them in
int8         the accuracy-aware chain: shared calibration + debugger, first recipe that passes the gate
debugger     TensorFlow's QuantizationDebugger: per-layer int8 error (RMSE / scale), worst first
metadata     standard TFLite Model Metadata + labels.txt + edgeclf.json packed into the file
validate     the test split (sha256-checked), Keras reference vs. runtime Classifier, accuracy/CI/agreement/latency
report       report.json / report.md / the stderr table, and the gate decision
run          the whole `edgeclf export` command as a function: export_run(ExportOptions(...))
"""
