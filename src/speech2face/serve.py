"""`s2f serve`: a web page (Gradio) to upload or record a voice and see the face the model draws.

Safety: binds 127.0.0.1 unless told otherwise; uploads over `max_upload_mb` are refused by the server
before they reach the model, recordings over `max_seconds` and anything that is not audio get one line
on the page where the face would be, and `{"refused": reason}` as the details (no traceback); the uploaded
file is deleted as soon as the request is answered; the app reads no path a visitor names (only Gradio's
own upload folder, which we empty; the examples are bytes in memory, chosen by button). The model is loaded
once and shared; `concurrency` requests run at a time, the rest queue.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError, Speech2FaceError
from .examples import write_examples
from .gallery import Gallery
from .pipeline import MIN_SPEECH_SECONDS, Speech2Face
from .voice import audio
from .voice.diarize import turns_json


@dataclass(frozen=True)
class ServeSettings:
    """Where `s2f serve` listens and what it accepts (the CLI's defaults)."""

    host: str = "127.0.0.1"  # this machine only
    port: int = 7860
    max_upload_mb: float = 20.0  # larger uploads are refused by the server, before the model
    max_seconds: float = 60.0  # longer recordings are refused, from the declared length where there is one
    concurrency: int = 2  # requests computed at once; the rest queue
    min_speech: float = MIN_SPEECH_SECONDS  # seconds of speech a face needs, per speaker


REMEMBERED_ANSWERS = 64
Answer = tuple[str, dict[str, Any]]  # HTML with the face (and nearest faces) inline, details
INTERNAL_NAME = re.compile(r"^<[^>]*>: ")  # how an error names bytes or an array (audio.describe_source)


def build_app(model: Any, gallery: Any = None, settings: ServeSettings = ServeSettings(),
              upload_dir: Path | None = None, examples: Sequence[tuple[str, str, bytes]] = ()) -> Any:
    """The Gradio Blocks of the page; `model` a Speech2Face, `gallery` an optional Gallery, `examples` (name,
    what it is, wav bytes) one button each: a visitor sees an answer, or a refusal, without uploading."""
    import gradio as gr

    # Gradio stores identical uploads at one path (named by their content hash), so concurrent requests with
    # the same recording share a file. The first reads and deletes it and computes; the others wait for its
    # answer. Answers stay a while by that key (an image of a few KB each).
    answers: OrderedDict[str, Future[Answer]] = OrderedDict()
    lock = threading.Lock()

    def draw(path: str | None) -> Answer:
        if not path:
            return refused("Upload or record a voice first.")
        upload = Path(path)
        key = f"{upload.parent.name}/{upload.name}"
        with lock:
            answer = answers.get(key)
            if answer is not None:
                answers.move_to_end(key)
                _forget(upload, upload_dir)
                data = None
            else:
                try:
                    data = upload.read_bytes()
                except OSError:
                    return refused("That upload is gone (already answered); send it again.")
                finally:
                    _forget(upload, upload_dir)  # the only copy is now in memory, for this request
                answer = answers[key] = Future()
                while len(answers) > REMEMBERED_ANSWERS:
                    answers.popitem(last=False)
        if data is not None:
            try:
                answer.set_result(compute(data))
            except Exception as error:  # noqa: BLE001 - not swallowed: raised below, here and in every waiter
                answer.set_exception(error)
        return answer.result()

    def compute(data: bytes) -> Answer:
        try:
            wave = audio.load_audio(data, duration=settings.max_seconds + 1)
            if len(wave) > settings.max_seconds * audio.SAMPLE_RATE:
                return refused(f"That recording is longer than {settings.max_seconds:g} s; send a shorter one.")
            prediction = model.predict(wave)
        except Speech2FaceError as error:  # name the recording, not our in-memory copy of it
            return refused(INTERNAL_NAME.sub("the recording: ", str(error), count=1))
        several = len(prediction.speakers) > 1
        page = "".join(_speaker_html(one, gallery, several) for one in prediction.speakers)
        details = {"model": prediction.model, "windows": prediction.windows,
                   "voiced_seconds": round(prediction.voiced_seconds, 2),
                   "speakers": [{"label": one.label, "voiced_seconds": round(one.voiced_seconds, 2),
                                 "turns": turns_json(one.turns)}
                                for one in prediction.speakers]}
        return page, details

    warning = ("**SYNTHETIC MODEL**: its voice encoder learnt on a synthetic world that pairs real recorded voices "
               "(transformed) with faces; the pairing is made up, so its faces say nothing about real people."
               if model.card.synthetic else
               "Faces drawn from a voice are a guess at features correlated with voice (sex, age, build), "
               "not a portrait of the speaker.")
    with gr.Blocks(title="speech2face", delete_cache=(300, 600)) as app:
        terms = f" Terms: {model.card.terms}." if model.card.terms else ""
        gr.Markdown(f"# speech2face\nModel: `{model.card.name}`. {warning}{terms}")
        with gr.Row():
            with gr.Column():
                voice = gr.Audio(sources=["upload", "microphone"], type="filepath", label="voice (up to "
                                 f"{settings.max_seconds:g} s)", elem_id="voice")
                button = gr.Button("Draw the face", variant="primary", elem_id="draw")
            with gr.Column():
                # inline images (data URLs): nothing of the answer is written to disk
                face = gr.HTML(elem_id="face")
                details = gr.JSON(label="details", elem_id="details")
        button.click(draw, inputs=voice, outputs=[face, details], concurrency_limit=settings.concurrency,
                     api_name="predict")
        if examples:
            gr.Markdown("**Or try an example** (no upload needed):\n"
                        + "\n".join(f"- **{name}**: {what}" for name, what, _ in examples))
            with gr.Row():
                for name, _, data in examples:
                    gr.Button(name, elem_id=f"example-{name}", size="sm").click(
                        lambda data=data: compute(data), outputs=[face, details],
                        concurrency_limit=settings.concurrency, api_name=f"example_{name}")
    return app


def refused(message: str) -> Answer:
    """No face: the reason where the face would be (a toast folds its message away), and in the details."""
    return (f'<p class="refused" style="color:#a00"><b>No face from this recording.</b> {html.escape(message)}</p>',
            {"refused": message})


def _speaker_html(prediction: Any, gallery: Any, several: bool) -> str:
    """One speaker's face (captioned with its label and speech when there are several), and with a gallery the
    nearest real faces."""
    caption = (f"<p><b>{html.escape(prediction.label)}</b>: {prediction.voiced_seconds:.1f} s of speech in "
               f"{len(prediction.turns)} turn(s)</p>" if several else "")
    part = caption + _img(prediction.image, f"face from the voice of {prediction.label}", 256)
    if gallery is not None:
        from PIL import Image

        part += "<p>nearest real faces</p>" + "".join(
            _img(Image.fromarray(gallery.faces[i]), f"{gallery.speakers[i]} (cos {c:.2f})", 112)
            for i, c in gallery.nearest(prediction.feature))
    return f'<div class="speaker">{part}</div>'


def _img(image: Any, title: str, width: int) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return (f'<img src="data:image/png;base64,{data}" width="{width}" title="{html.escape(title)}" '
            f'alt="{html.escape(title)}" style="image-rendering:pixelated;margin:2px">')


def _forget(path: Path, upload_dir: Path | None) -> None:
    """Delete an uploaded file once read; never outside `upload_dir`. Its (empty) folder stays: Gradio may be
    writing the next upload of the same content there, and its cache sweep removes old folders."""
    resolved = path.resolve()
    if upload_dir is None or upload_dir.resolve() in resolved.parents:
        resolved.unlink(missing_ok=True)


def example_recordings() -> list[tuple[str, str, bytes]]:
    """`examples.write_examples` in memory: (name, what, wav bytes); none (said once) without the recordings."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            return [(e.name, e.what, e.path.read_bytes()) for e in write_examples(Path(folder))]
        except DataError as error:
            print(f"no examples on the page: {error}", flush=True)
            return []


def serve(model_name: str, settings: ServeSettings = ServeSettings(), gallery_data: str | None = None,
          device: str | None = None) -> None:
    """Load the model and serve the page until interrupted."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    upload_dir = Path(tempfile.mkdtemp(prefix="s2f-serve-"))
    os.environ["GRADIO_TEMP_DIR"] = str(upload_dir)  # our own folder: emptied per request, removed at exit

    model = Speech2Face.from_pretrained(model_name, device=device, min_speech=settings.min_speech)
    gallery = Gallery.load(gallery_data) if gallery_data else None
    app = build_app(model, gallery, settings, upload_dir, example_recordings())
    print(f"model: {model.card.label}\nserving on http://{settings.host}:{settings.port} (Ctrl-C to stop)", flush=True)
    try:
        app.queue(default_concurrency_limit=settings.concurrency, max_size=256).launch(
            server_name=settings.host, server_port=settings.port,
            max_file_size=f"{settings.max_upload_mb:g}mb", show_error=False,
            quiet=True, footer_links=[])
    finally:
        shutil.rmtree(upload_dir, ignore_errors=True)
