"""Facts with their sources named, as data and small lookups only.

Datadog sites and intakes, Istio versions and telemetry endpoints, Kubernetes API removals, the
permissions the agent needs.
"""
