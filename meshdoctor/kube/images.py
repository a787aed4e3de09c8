"""Container image references: repository, tag and digest, as the container runtime splits them."""

from __future__ import annotations


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """Split an image into repository, tag and digest (each part None when absent).

    `reg:5000/istio/pilot:1.20.3@sha256:ab` -> (`reg:5000/istio/pilot`, `1.20.3`, `sha256:ab`).
    """
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last_slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > last_slash:
        image, tag = image[:colon], image[colon + 1 :]
    return image, tag, digest


def image_name(image: str) -> str:
    """The last path segment of an image's repository: `docker.io/istio/pilot:1.0.7` -> `pilot`."""
    return split_image(image)[0].rsplit("/", 1)[-1]
