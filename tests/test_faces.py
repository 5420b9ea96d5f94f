"""Detection, landmarks, alignment and the dlib encoder on real photos and a real video."""

from __future__ import annotations

import numpy as np
import pytest

import speech2face as s2f
from speech2face import faces

PORTRAITS = ("astronaut", "hopper", "obama", "obama2", "obama3", "biden")


def iou(a: faces.FaceBox, b: faces.FaceBox) -> float:
    w = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    h = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    return w * h / (a.area + b.area - w * h)


def aligned(image: np.ndarray, size: int = 224) -> faces.AlignedFace:
    box = faces.detect(image)[0]
    return faces.align(image, faces.landmarks(image, box), size=size)


@pytest.mark.parametrize("name", PORTRAITS)
def test_the_portrait_face_is_found_first(photos: dict[str, np.ndarray], name: str) -> None:
    image = photos[name]
    boxes = faces.detect(image)
    assert boxes, name
    main = boxes[0]
    assert main.score > 0.3
    assert all(main.area >= other.area for other in boxes[1:])
    assert 0.02 < main.area / (image.shape[0] * image.shape[1]) < 0.6  # a portrait-sized face
    assert 0 <= main.x0 < main.x1 <= image.shape[1] + 1 and 0 <= main.y0 < main.y1 <= image.shape[0] + 1


def test_grey_and_rgba_give_the_same_faces(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["obama"]
    grey = (rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    reference = faces.detect(rgb)[0]
    assert iou(faces.detect(rgba)[0], reference) == 1.0
    assert iou(faces.detect(grey)[0], reference) > 0.8


def test_huge_images_are_downscaled_and_boxes_mapped_back(photos: dict[str, np.ndarray]) -> None:
    image = photos["astronaut"]
    huge = np.repeat(np.repeat(image, 5, axis=0), 5, axis=1)  # 2560 x 2560
    expected = faces.detect(image)[0].scaled(5)
    found = faces.detect(huge)[0]
    assert iou(found, expected) > 0.7


def test_mmod_detector_agrees_with_hog(photos: dict[str, np.ndarray]) -> None:
    image = photos["obama"]
    assert iou(faces.detect(image, detector="mmod")[0], faces.detect(image)[0]) > 0.5


@pytest.mark.parametrize("kind", ["black", "noise", "tiny", "empty", "no face"])
def test_images_without_faces_give_an_empty_list(kind: str) -> None:
    import skimage.data

    image = {
        "black": np.zeros((480, 640, 3), np.uint8),
        "noise": np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "tiny": np.full((12, 9, 3), 128, np.uint8),
        "empty": np.zeros((0, 0, 3), np.uint8),
        "no face": skimage.data.coffee(),
    }[kind]
    assert faces.detect(image) == []
    assert faces.detect(image, detector="mmod") == []


def test_bad_image_arrays_raise_value_error() -> None:
    with pytest.raises(ValueError, match="uint8"):
        faces.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        faces.detect(np.zeros((100, 100, 2), np.uint8))
    with pytest.raises(ValueError, match="'hog' or 'mmod'"):
        faces.detect(np.zeros((100, 100, 3), np.uint8), detector="haar")  # type: ignore[arg-type]


def test_pick_chooses_the_face_nearest_a_normalised_point() -> None:
    left = faces.FaceBox(10, 10, 50, 50, 1.0)
    right = faces.FaceBox(150, 10, 190, 50, 0.5)
    assert faces.pick([left, right], near=(0.9, 0.2), image_size=(200, 100)) == right
    assert faces.pick([left, right], near=(0.1, 0.2), image_size=(200, 100)) == left
    assert faces.pick([], near=(0.5, 0.5), image_size=(200, 100)) is None


@pytest.mark.parametrize("name", PORTRAITS)
def test_landmarks_sit_on_eyes_and_mouth(photos: dict[str, np.ndarray], name: str) -> None:
    image = photos[name]
    box = faces.detect(image)[0]
    points = faces.landmarks(image, box)
    assert points.shape == (68, 2) and points.dtype == np.float32
    image_left_eye, image_right_eye = faces.eye_centers(points)
    mouth = points[48:68].mean(axis=0)
    assert image_left_eye[0] < box.center[0] < image_right_eye[0]
    assert max(image_left_eye[1], image_right_eye[1]) < box.center[1] < mouth[1] < box.y1 + 0.1 * box.height
    # Eyes are darker than the skin beside them: a check that the points are on real eyes.
    grey = image.mean(axis=2)
    below = round(0.12 * box.height)  # the cheek, straight under the eye
    for eye in (points[36:42], points[42:48]):
        x, y = np.round(eye.mean(axis=0)).astype(int)
        assert grey[y - 1:y + 2, x - 1:x + 2].mean() < grey[y + below - 1:y + below + 2, x - 1:x + 2].mean()


def test_alignment_puts_eyes_of_different_photos_at_the_same_pixels(photos: dict[str, np.ndarray]) -> None:
    for size in (112, 224):
        eyes = []
        for name in PORTRAITS:
            crop = aligned(photos[name], size)
            assert crop.image.shape == (size, size, 3) and crop.image.dtype == np.uint8
            eyes.append(np.concatenate(faces.eye_centers(crop.landmarks)))
        eyes = np.array(eyes)
        spread = np.abs(eyes - eyes.mean(axis=0)).max()
        assert spread < 0.04 * size, (size, eyes)
        # and symmetric about the vertical midline, level
        assert abs((eyes[:, 0] + eyes[:, 2]).mean() / 2 - size / 2) < 0.03 * size
        assert np.abs(eyes[:, 1] - eyes[:, 3]).max() < 0.03 * size


def test_alignment_maps_landmarks_with_the_same_transform_as_pixels(photos: dict[str, np.ndarray]) -> None:
    image = photos["hopper"]
    points = faces.landmarks(image, faces.detect(image)[0])
    crop = faces.align(image, points, size=224)
    # Landmarks found again on the crop land where the transform put the originals.
    again = faces.landmarks(crop.image, faces.FaceBox(0, 0, 224, 224, 1.0))
    assert np.median(np.linalg.norm(again - crop.landmarks, axis=1)) < 4.0


def test_alignment_rejects_bad_landmarks(photos: dict[str, np.ndarray]) -> None:
    with pytest.raises(s2f.FaceNotFound):
        faces.align(photos["hopper"], np.zeros((5, 2)))
    with pytest.raises(s2f.FaceNotFound):
        faces.align(photos["hopper"], np.full((68, 2), np.nan))


@pytest.mark.parametrize("name", ["dlib", "dlib-torch"])
def test_encoders_tell_people_apart(photos: dict[str, np.ndarray], name: str) -> None:
    encoder = faces.get_encoder(name)
    assert name in faces.available_encoders() and encoder.dim == 128
    names = ["obama", "obama2", "obama3", "biden", "astronaut", "hopper"]
    embeddings = encoder.embed(np.stack([aligned(photos[n]).image for n in names]))
    assert embeddings.shape == (6, 128) and embeddings.dtype == np.float32
    distance = {(a, b): float(np.linalg.norm(embeddings[i] - embeddings[j]))
                for i, a in enumerate(names) for j, b in enumerate(names)}
    same = [distance["obama", "obama2"], distance["obama", "obama3"], distance["obama2", "obama3"]]
    different = [distance[a, b] for a in ("obama", "obama2", "obama3") for b in ("biden", "astronaut", "hopper")]
    assert max(same) < 0.6 < min(different), (same, different)


@pytest.mark.parametrize("name", ["dlib", "dlib-torch"])
def test_encoders_batch_and_resize_consistently(photos: dict[str, np.ndarray], name: str) -> None:
    encoder = faces.get_encoder(name)
    crops = [aligned(photos[n], 150).image for n in ("obama", "biden")]
    batch = encoder.embed(np.stack(crops))
    np.testing.assert_allclose(batch[1], encoder.embed(crops[1])[0], atol=1e-5)
    bigger = encoder.embed(aligned(photos["obama"], 300).image[None])[0]
    assert np.linalg.norm(bigger - batch[0]) < 0.1
    assert encoder.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(ValueError, match="uint8 aligned crops"):
        encoder.embed(np.zeros((2, 150, 150), np.float32))


def test_unknown_encoder_is_a_clear_error() -> None:
    with pytest.raises(s2f.ModelError,
                       match="unknown face encoder 'arcface'; available: dlib, dlib-torch, facenet, vggface"):
        faces.get_encoder("arcface")


def test_a_real_talking_head_video(carphone_frames: list[np.ndarray], photos: dict[str, np.ndarray]) -> None:
    found = [faces.detect(frame) for frame in carphone_frames]
    assert sum(len(boxes) >= 1 for boxes in found) >= 0.9 * len(carphone_frames)
    crops = [faces.align(f, faces.landmarks(f, b[0])).image for f, b in zip(carphone_frames, found, strict=True) if b]
    encoder = faces.get_encoder("dlib")
    video = encoder.embed(np.stack(crops))
    others = encoder.embed(np.stack([aligned(photos[n]).image for n in ("obama", "biden", "hopper")]))
    within = np.linalg.norm(video[:, None] - video[None], axis=2).max()
    across = np.linalg.norm(video[:, None] - others[None], axis=2).min()
    assert within < across, (within, across)
