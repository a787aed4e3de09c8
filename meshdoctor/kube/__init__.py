"""Kubernetes semantics over plain objects: metadata, images, workloads, selectors, RBAC, NetworkPolicy, Services.

Nothing here knows Istio or Datadog; the istio and datadog packages build on it.
"""
