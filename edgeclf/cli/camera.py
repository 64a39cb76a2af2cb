"""`edgeclf camera`: live classification from a Pi camera, a webcam, a video file or a folder of images."""

from __future__ import annotations

import click


@click.command("camera")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("-s", "--source", default="picamera", show_default=True,
              help="picamera (Raspberry Pi camera), a camera index (0 = first USB webcam), a video file, or a "
                   "folder of images to replay.")
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Labels reported per frame.")
@click.option("-t", "--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help='Minimum top-1 score; below it the label is "unknown".')
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Interpreter threads (default: every usable core).")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after this many frames.")
@click.option("--fps-limit", type=click.FloatRange(min=0.1), default=None,
              help="Classify at most this many frames per second (saves power and heat).")
@click.option("--headless", is_flag=True, help="Print one JSON line per frame on stdout (label, score, latency, fps).")
@click.option("--display", is_flag=True, help="Show the annotated feed in a window (needs OpenCV with GUI).")
@click.option("--serve", "serve", metavar="HOST:PORT", default=None,
              help="Serve a web page with the live annotated feed; 127.0.0.1 unless a host is given "
                   "(0.0.0.0:8080 to reach it from another machine).")
@click.option("--record", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Save the annotated stream to a video file (.avi or .mp4).")
@click.option("--force", is_flag=True, help="Replace an existing --record file.")
@click.option("--loop", "loop_source", is_flag=True, help="Replay a video file or folder forever.")
@click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="labels.txt for a model without embedded labels.")
@click.option("-q", "--quiet", is_flag=True, help="No status line or summary on stderr.")
def command(model, source, top_k, threshold, threads, max_frames, fps_limit, headless, display, serve, record,
            force, loop_source, labels_file, quiet):
    """Classify a live feed with MODEL (.tflite) until Ctrl-C, --max-frames, or the end of a file/folder source.

    Ctrl-C stops cleanly and prints a summary: frames, mean/p50/p90 latency per stage (capture, preprocess,
    inference) and FPS. With --headless the summary is also the last JSON line: {"summary": {...}}.

    \b
    Examples:
      edgeclf camera model_int8.tflite --source picamera --serve 0.0.0.0:8080
      edgeclf camera model_int8.tflite --source 0 --display --threshold 0.7
      edgeclf camera model_int8.tflite --source clip.mp4 --headless --max-frames 100 > frames.jsonl
      edgeclf camera model_int8.tflite --source photos/ --fps-limit 2 --record demo.avi

    \b
    Raspberry Pi camera: picamera2 comes from Raspberry Pi OS (sudo apt install python3-picamera2); create the
    virtual environment with --system-site-packages so it is visible. Webcams and video files need OpenCV:
    pip install "edgeclf[camera]".
    """
    import json
    import signal
    import sys

    from edgeclf.console import note
    from edgeclf.fsutil import refuse_clobber
    from edgeclf.runtime.classifier import Classifier
    from edgeclf.runtime.live import (DisplaySink, JsonLinesSink, RecordSink, ServeSink, StatusSink, run_live)
    from edgeclf.runtime.sources import open_source

    if record:
        refuse_clobber(record, force, "--record file")
    clf = Classifier(model, labels=labels_file, num_threads=threads)
    src = open_source(source, clf.input_size)
    sinks = []
    try:
        if headless:
            sinks.append(JsonLinesSink())
        elif not quiet:
            sinks.append(StatusSink())
        if display:
            sinks.append(DisplaySink())
        if record:
            sinks.append(RecordSink(record, fps_limit or src.fps or 10.0))
        if serve:
            server_sink = ServeSink(serve)
            sinks.append(server_sink)
            where = server_sink.server.url
            if server_sink.server.all_interfaces:
                where += f"  (all interfaces: use this machine's address, port {server_sink.server.port})"
            note(f"serving the live feed at {where}")
    except BaseException:
        for sink in sinks:
            sink.close()
        src.close()
        raise
    if not quiet:
        note(f"{clf.model_path.name} ({clf.backend}, input {clf.input_size[0]}x{clf.input_size[1]} "
             f"{clf.input_dtype}) on {src.name}; Ctrl-C to stop")

    def _terminate(signum, frame):  # `kill` / systemd stop: same clean stop and summary as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        result = run_live(clf, src, sinks, top_k=top_k, threshold=threshold, max_frames=max_frames,
                          fps_limit=fps_limit, loop=loop_source)
    finally:
        signal.signal(signal.SIGTERM, previous)

    summary = dict(result.stats.summary(), source=src.name, stopped=result.reason, backend=clf.backend)
    skipped = getattr(src, "skipped", [])
    if skipped:
        summary["skipped"] = [str(e) for e in skipped]
    if result.error is not None:
        summary["error"] = str(result.error)
    if headless:
        sys.stdout.write(json.dumps({"summary": summary}, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    if not quiet:
        note(f"stopped: {result.reason}")
        note(result.stats.table())
        for exc in skipped:
            note(f"skipped: {exc}")
        if record and result.stats.frames:
            note(f"recorded {record}")
    if result.error is not None:
        raise result.error
