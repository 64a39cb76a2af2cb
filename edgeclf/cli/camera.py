"""`edgeclf camera`: live classification from a Pi camera, a webcam, a video file or a folder of images."""

from __future__ import annotations

import click

from . import options


@click.command("camera")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("-s", "--source", default="picamera", show_default=True,
              help="picamera (Raspberry Pi camera), a camera index (0 = first USB webcam), a video file, or a "
                   "folder of images to replay.")
@options.top_k
@options.threshold
@options.threads
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
@click.option("--stream-fps", type=click.FloatRange(min=0.5), default=None,
              help="Most frames per second the --serve page is sent (default 15; JPEG encoding runs beside the "
                   "classification loop, not in it).")
@click.option("--mqtt", metavar="URL", default=None,
              help="Publish each change of the answer to an MQTT broker: mqtt://[USER@]HOST[:PORT][/TOPIC] "
                   "(retained JSON on TOPIC/state, online/offline on TOPIC/status; password from the URL or "
                   "EDGECLF_MQTT_PASSWORD). Needs: pip install \"edgeclf[mqtt]\".")
@click.option("--ha-discovery", "mqtt_discovery", is_flag=False, flag_value="homeassistant", default=None,
              metavar="[PREFIX]", help="With --mqtt: announce the camera to Home Assistant (MQTT discovery under "
                                       "PREFIX, default homeassistant), so it appears as a sensor by itself.")
@click.option("--webhook", metavar="URL", default=None,
              help="POST each change of the answer as JSON to this http(s) URL (Node-RED, Home Assistant, ...).")
@click.option("--on-change", metavar="CMD", default=None,
              help="Run a shell command on each change of the answer: the event as JSON on its stdin, and "
                   "EDGECLF_LABEL, EDGECLF_PREVIOUS, EDGECLF_SCORE in its environment.")
@click.option("--hold", type=click.IntRange(min=1), default=3, show_default=True,
              help="Frames in a row a new answer must last before --mqtt/--webhook/--on-change report it "
                   "(ignores flicker).")
@click.option("--force", is_flag=True, help="Replace an existing --record file.")
@click.option("--loop", "loop_source", is_flag=True, help="Replay a video file or folder forever.")
@options.labels
@options.quiet("No status line or summary on stderr.")
def command(model, source, top_k, threshold, threads, max_frames, fps_limit, headless, display, serve, record,
            stream_fps, mqtt, mqtt_discovery, webhook, on_change, hold, force, loop_source, labels_file, quiet):
    """Classify a live feed with MODEL (.tflite) until Ctrl-C, --max-frames, or the end of a file/folder source.

    Ctrl-C stops cleanly and prints a summary: frames, mean/p50/p90 latency per stage (capture, preprocess,
    inference) and FPS. With --headless the summary is also the last JSON line: {"summary": {...}}.

    The --serve page shows the camera's picture (the Pi camera's 640x480 main stream, or a file/folder frame as it
    is) with the top-k scores as bars, the threshold, FPS, per-stage latency and a rolling latency chart.

    --mqtt, --webhook and --on-change report when the answer changes (after --hold frames), not every frame: the
    place to switch a relay, notify a phone or log to a server. They run on their own thread; the loop never waits.

    \b
    Examples:
      edgeclf camera model_int8.tflite --source picamera --serve 0.0.0.0:8080
      edgeclf camera model_int8.tflite --source 0 --display --threshold 0.7
      edgeclf camera model_int8.tflite --source clip.mp4 --headless --max-frames 100 > frames.jsonl
      edgeclf camera model_int8.tflite --source photos/ --fps-limit 2 --record demo.avi
      edgeclf camera model_int8.tflite --threshold 0.8 --mqtt mqtt://homeassistant.local/edgeclf/door --ha-discovery
      edgeclf camera model_int8.tflite --webhook http://192.168.1.10:1880/edgeclf --hold 5
      edgeclf camera model_int8.tflite --on-change 'echo "$(date) $EDGECLF_LABEL" >> seen.log'

    \b
    Raspberry Pi camera: picamera2 comes from Raspberry Pi OS (sudo apt install python3-picamera2); create the
    virtual environment with --system-site-packages so it is visible. Webcams and video files need OpenCV:
    pip install "edgeclf[camera]".
    """
    from edgeclf.console import emit_json, note
    from edgeclf.errors import UsageError
    from edgeclf.fsutil import refuse_clobber
    from edgeclf.runtime.classifier import Classifier
    from edgeclf.runtime.live import LoopOptions, run_camera
    from edgeclf.runtime.sinks import SinkOptions

    if mqtt_discovery and not mqtt:
        raise UsageError("--ha-discovery announces the --mqtt topics", "add --mqtt mqtt://HOST/TOPIC")
    if record:
        refuse_clobber(record, force, "--record file")
    clf = Classifier(model, labels=labels_file, num_threads=threads)
    outputs = SinkOptions(headless=headless, quiet=quiet, display=display, serve=serve, record=record,
                          stream_fps=stream_fps, mqtt=mqtt, mqtt_discovery=mqtt_discovery,
                          webhook=webhook, on_change=on_change, hold=hold)
    result = run_camera(clf, source, outputs, LoopOptions(top_k, threshold, max_frames, fps_limit, loop_source),
                        note=note)
    if headless:
        emit_json({"summary": result.summary}, lines=True)
    if not quiet:
        note(f"stopped: {result.reason}")
        note(result.stats.table())
        for text in result.summary.get("skipped", []):
            note(f"skipped: {text}")
        if record and result.stats.frames:
            note(f"recorded {record}")
    if result.error is not None:
        raise result.error
