"""`read_frames` decodes only what the sampled frames need (seeks to keyframes, skips unreferenced frames):
it must return exactly the frames that decoding every frame shows at those times, whatever the encoding."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from conftest import ffmpeg
from speech2face.data.media import read_frames
from speech2face.data.segment import _frame_times, windows

# name: encoder options; 12 s of a moving, numbered test pattern at 25 fps
ENCODINGS = {
    "h264-long-gop.mp4": ["-c:v", "libx264", "-preset", "veryfast"],  # x264's keyframe every 250 frames, B-frames
    "h264-gop25.mp4": ["-c:v", "libx264", "-preset", "veryfast", "-g", "25"],
    "h264-open-gop.mkv": ["-c:v", "libx264", "-preset", "veryfast", "-x264-params", "keyint=30:open-gop=1"],
    "h264-no-bframes.mp4": ["-c:v", "libx264", "-preset", "veryfast", "-g", "40", "-bf", "0"],
    "vp8.webm": ["-c:v", "libvpx", "-deadline", "realtime", "-g", "30", "-b:v", "300k"],
    "mpeg4-bframes.avi": ["-c:v", "mpeg4", "-g", "12", "-bf", "2"],
}


def every_frame(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]


def shown_at(frames: list[tuple[float, np.ndarray]], time: float) -> tuple[float, np.ndarray] | None:
    """The frame on screen at `time` by brute force (past the end: the last frame for 0.5 s, then none)."""
    before = [f for f in frames if f[0] <= time + 1e-6]
    if not before:
        return frames[0]
    if before[-1] is frames[-1] and time - frames[-1][0] >= 0.5:
        return None
    return before[-1]


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_read_frames_returns_the_frames_a_full_decode_shows(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=192x108:rate=25:duration=12", *ENCODINGS[name],
           "-pix_fmt", "yuv420p", str(path))
    frames = every_frame(path)
    # prepare's sampling of 6 s windows from several starts, times on frame boundaries, and past the end
    plans = [[t for a, b in windows(start, min(start + 7.3, 12.0)) for t in _frame_times(a, b, 3)]
             for start in (0.0, 0.3, 2.7, 5.02)]
    plans += [[0.0, 0.04, 1.0, 1.04, 5.0, 9.96], [11.9, 11.97, 12.2], [11.0, 12.6, 13.0]]
    for times in plans:
        expected = [f for f in (shown_at(frames, t) for t in times) if f is not None]
        got = read_frames(path, times)
        assert [t for t, _ in got] == [t for t, _ in expected], (name, times)
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True)), (name, times)


def test_face_search_goes_coarse_to_fine_and_follows_the_previous_face(photos: dict[str, np.ndarray],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A real portrait placed in a 720p frame: the cheap searches (around the point, around the previous
    face, the coarse pass) find the face the full search finds; a wrong hint or a small face falls through
    to the wider searches."""
    import cv2

    from speech2face import faces
    from speech2face.data.choose import candidate_faces
    from speech2face.faces.detect import MAX_SIDE

    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[40:680, 600:1240] = cv2.resize(photos["obama"], (640, 640), interpolation=cv2.INTER_AREA)
    sizes: list[int] = []  # per search: the longest side of the image the detector scans
    detect = faces.detect
    monkeypatch.setattr(faces, "detect", lambda image, **options: sizes.append(
        min(max(image.shape[:2]), options.get("max_side", MAX_SIDE))) or detect(image, **options))

    def iou(a: faces.FaceBox, b: faces.FaceBox) -> float:
        inter = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
        return inter / (a.area + b.area - inter)

    full = detect(frame)[0]
    near = (full.center[0] / 1280, full.center[1] / 720)
    coarse = candidate_faces(frame, near)
    # the square around the point (0.6 x 720 px at the coarse pass's half scale) sufficed
    assert sizes == [216] and iou(coarse[0], full) > 0.7
    sizes.clear()
    assert iou(candidate_faces(frame, None)[0], full) > 0.7 and sizes == [640]  # no point: the coarse pass
    sizes.clear()
    tracked = candidate_faces(frame, near, hint=coarse[0])
    assert len(sizes) == 1 and sizes[0] < 400 and iou(tracked[0], full) > 0.7  # a small region sufficed
    sizes.clear()
    wrong = faces.FaceBox(50, 50, 150, 150, 1.0)  # no face there: falls back to the coarse pass
    assert iou(candidate_faces(frame, near, hint=wrong)[0], full) > 0.7 and sizes[-1] == 640
    # a face too small for the coarse pass (under 160 px in 720p) is found by the full search
    small = np.full((720, 1280, 3), 90, np.uint8)
    small[240:480, 520:760] = cv2.resize(photos["obama"], (240, 240), interpolation=cv2.INTER_AREA)
    sizes.clear()
    found = candidate_faces(small, (640 / 1280, 360 / 720))
    assert found and sizes == [216, 640, 1280] and 60 < found[0].width < 160, (found, sizes)
