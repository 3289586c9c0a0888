"""Image and file I/O shared by every command (numpy + OpenCV only, no torch)."""

from ftrt.io.files import IMAGE_SUFFIXES, InputError, collect_inputs, ensure_output_dir
from ftrt.io.images import (
    ImageReadError,
    atomic_write,
    read_image,
    to_uint8,
    write_image,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "atomic_write",
    "collect_inputs",
    "ensure_output_dir",
    "InputError",
    "ImageReadError",
    "read_image",
    "write_image",
    "to_uint8",
    "write_json_atomic",
    "write_text_atomic",
]
