"""Remediations: whole corrected manifests (what rules build) and writing them out (`--emit-fixes`)."""
