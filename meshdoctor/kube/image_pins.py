"""Whether an image reference pins what runs, and the digests a workload's pods run now.

An image with no tag, or the `latest` tag, and no digest is pulled anew by each node that starts a
pod: the same pod template runs whatever the tag pointed to at the time. The pods' container
statuses (`imageID: <repository>@sha256:...`) say what they actually run.

The reference is read with its own pattern (a `sha256` digest of 64 hex digits), not with
`kube.images.split_image`: the two disagree on malformed references (an empty image, a trailing
`:` or `@`, another digest algorithm), and this one is what `unpinned` has always meant.
"""

from __future__ import annotations

import re

from meshdoctor.kube.workloads import pods_of
from meshdoctor.snapshot import KubeObject, ObjectReader

#: An image reference: [registry/]repository[:tag][@digest].
_IMAGE = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[^:/@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def unpinned(image: str) -> bool:
    """True for an image with no tag, or `latest`, and no digest."""
    match = _IMAGE.match(image)
    if not match:
        return False
    return not match.group("digest") and match.group("tag") in (None, "latest")


def pinned_to_digest(image: str, digest: str) -> str:
    """An unpinned image's repository at `digest`: `agent:latest` -> `agent@sha256:...`."""
    repo = _IMAGE.match(image).group("repo")  # type: ignore[union-attr]
    return f"{repo}@{digest}"


def running_digests(reader: ObjectReader, workload: KubeObject) -> dict[str, str]:
    """Container name -> the digest the workload's pods run now, where all its pods agree."""
    seen: dict[str, set[str]] = {}
    for pod in pods_of(reader, workload):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            image_id = str(status.get("imageID", ""))
            if "@sha256:" in image_id:
                seen.setdefault(status.get("name", ""), set()).add(image_id.split("@", 1)[1])
    return {name: digests.pop() for name, digests in seen.items() if len(digests) == 1}
