"""meshdoctor: diagnose the Datadog <-> Istio integration on Kubernetes."""

__version__ = "0.1.0"
