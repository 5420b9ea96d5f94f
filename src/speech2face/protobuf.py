"""A reader of the protobuf wire format, enough to take the weights out of model files that ship as
protobuf messages (a TensorFlow GraphDef, an ONNX model) without TensorFlow, ONNX or generated classes.

    for number, value in fields(message_bytes): ...    # value: int (varint, fixed) or memoryview (bytes)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .errors import ModelError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def varint(buffer: memoryview, position: int) -> tuple[int, int]:
    """The varint at `position` and the position after it."""
    result = shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise ModelError("damaged protobuf: a varint runs past its message")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def fields(buffer: bytes | memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of each field of one message, in order: varints and fixed-width numbers as int
    (fixed32/64 as their raw unsigned bits), length-delimited fields as memoryview slices (no copy)."""
    buffer = memoryview(buffer)
    position = 0
    while position < len(buffer):
        key, position = varint(buffer, position)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == VARINT:
            value, position = varint(buffer, position)
        elif wire == FIXED64:
            value = int.from_bytes(buffer[position:position + 8], "little")
            position += 8
        elif wire == FIXED32:
            value = int.from_bytes(buffer[position:position + 4], "little")
            position += 4
        elif wire == LENGTH:
            size, position = varint(buffer, position)
            value = buffer[position:position + size]
            position += size
        else:
            raise ModelError(f"damaged protobuf: wire type {wire} (field {number})")
        if position > len(buffer):
            raise ModelError(f"damaged protobuf: field {number} runs past its message")
        yield number, value


def packed_varints(value: int | memoryview) -> list[int]:
    """A repeated integer field: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [value]
    out, position = [], 0
    while position < len(value):
        number, position = varint(value, position)
        out.append(number)
    return out


def as_float(bits: int) -> float:
    """A fixed32 field's bits as the float they hold."""
    return struct.unpack("<f", bits.to_bytes(4, "little"))[0]


def text(value: int | memoryview) -> str:
    if isinstance(value, int):
        raise ModelError("damaged protobuf: a string field holds a number")
    try:
        return bytes(value).decode()
    except UnicodeDecodeError as error:
        raise ModelError("damaged protobuf: a string field is not UTF-8") from error
