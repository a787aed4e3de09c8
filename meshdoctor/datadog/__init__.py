"""The Datadog Agent: sites and intakes, agent workloads and their environment, permissions, paths.

Facts (sites, permissions, paths) name their sources; `istio_check` finds where the `istio`
check's configuration comes from.
"""
