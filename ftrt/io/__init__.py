"""Image and file I/O shared by every command (numpy + OpenCV only, no torch)."""

from ftrt.io.atomic import atomic_write, write_json_atomic, write_text_atomic
from ftrt.io.files import IMAGE_SUFFIXES, ImageReadError, InputError, collect_inputs, ensure_output_dir
from ftrt.io.images import read_image, to_uint8, write_image

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
