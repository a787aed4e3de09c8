"""Facts with their sources named: Datadog sites and intakes, Istio versions and telemetry
endpoints, Kubernetes API removals, the permissions the agent needs. Data and small lookups only.
"""
