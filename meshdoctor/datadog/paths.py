r"""Where the Datadog Agent reads check configurations, and the `istio` check's options per era.

Facts only, each with its source. The agent's file provider
(DataDog/datadog-agent pkg/autodiscovery/providers/config_reader.go) reads every `confd_path`
folder one level deep: a file `<check>.yaml` / `<check>.yml` at the top, or any `*.yaml` /
`*.yml` file inside a folder named `<check>.d` (a folder without the `.d` suffix is skipped:
"Not a config folder, skipping directory"); `*.yaml.default` files count only when no other file
configures the check; `metrics.yaml` is a JMX metrics file, not an instance list; a file without
`instances` (and without `logs` / `jmx_metrics`) is "not a valid config file".

The container image copies `/conf.d` into its configuration folder at start
(Dockerfiles/agent/cont-init.d/89-copy-customfiles.sh:
`find -L /conf.d -name '*.yaml' -exec cp --parents -fv {} /etc/datadog-agent/ \;`): subfolders
are kept (`/conf.d/istio.d/conf.yaml` becomes `/etc/datadog-agent/conf.d/istio.d/conf.yaml`), and
only names ending in `.yaml` are copied (not `.yml`, not `.yaml.default`). The copy runs from the
image's entrypoint (cont-init.d, run by the s6 `/init` of Agent 6 images and by
`/bin/entrypoint.sh`), so a container whose `command` replaces the entrypoint (`agent run`, as the
Helm chart's agent container) copies nothing; the Helm chart runs the scripts in its `init-config`
init container instead (helm-charts templates/_containers-init-linux.yaml: `for script in $(find
/etc/cont-init.d/ -type f -name '*.sh' | sort) ; do bash $script ; done`, with the `confd`
ConfigMap at `/conf.d` and the shared `config` volume at `/etc/datadog-agent`).
"""

from __future__ import annotations

#: The agent's default `confd_path` in the container image (datadog-agent pkg/config defaults for
#: Linux; Dockerfiles/agent/Dockerfile `mkdir conf.d` under /etc/datadog-agent).
CONFD_PATH = "/etc/datadog-agent/conf.d"
#: The env var that overrides `confd_path` (every datadog.yaml key has a `DD_` env var).
CONFD_PATH_ENV = "DD_CONFD_PATH"

#: The folder the entrypoint copies into the configuration folder (89-copy-customfiles.sh).
COPIED_CONFD = "/conf.d"

#: The image ships `conf.d/istio.d/auto_conf.yaml`, which scrapes every Istio sidecar (Autodiscovery
#: identifiers `proxyv2`, `proxyv2-rhel8`; `http://%%host%%:15020/stats/prometheus`, 15090 before
#: Agent 7.44), from the istio check 3.1.0 (integrations-core istio CHANGELOG), first in Agent
#: 6.20 / 7.20. A volume mounted on the whole `conf.d/istio.d` folder hides it; a file copied from
#: `/conf.d/istio.d`, or a `subPath` mount of one file, sits beside it.
AUTO_CONF_FILE = "auto_conf.yaml"
AUTO_CONF_SINCE: dict[int, tuple[int, int]] = {6: (6, 20), 7: (7, 20)}
#: Where `cp --parents` puts `/conf.d/<rest>`: `/etc/datadog-agent` + `/conf.d/<rest>`.
COPY_TARGET_ROOT = "/etc/datadog-agent"
#: Names the copy takes (`find -name '*.yaml'`).
COPIED_SUFFIXES = (".yaml",)
#: Words in a container's command/args that mean it runs the image's cont-init.d scripts: the
#: Agent 6 s6 entrypoint `/init`, the Agent 7 `/bin/entrypoint.sh`, or the Helm init-config loop.
RUNS_CONT_INIT = ("/init", "entrypoint.sh", "cont-init.d")

#: File names the agent reads in `<confd>/<check>.d/` and as `<confd>/<check>.<ext>`.
CONFIG_SUFFIXES = (".yaml", ".yml")
DEFAULT_SUFFIX = ".default"
#: Files of a `<check>.d` folder that are not instance configurations.
NOT_INSTANCE_FILES = ("metrics.yaml", "metrics.yml")
#: The Autodiscovery template the image ships; a ConfigMap key of that name is a template too.
AUTO_CONF_FILE = "auto_conf.yaml"

#: The check's name: `istio.d` folder, `istio.yaml` file, `istio` in AD annotations.
ISTIO_CHECK = "istio"

#: Autodiscovery annotations (DataDog/datadog-agent pkg/autodiscovery/common/utils/pod_annotations.go
#: `ExtractTemplatesFromPodAnnotations`): v1 `ad.datadoghq.com/<container>.check_names` /
#: `.init_configs` / `.instances` (JSON lists of the same length), v2
#: `ad.datadoghq.com/<container>.checks` (a JSON object by check name, each with `instances` and
#: an optional `init_config`). When a container has a v2 `.checks` annotation its v1 annotations
#: are not read (the `else` branch), and a `.checks` value that does not parse ("cannot parse
#: check configuration") configures nothing for that container. v2 arrived with datadog-agent
#: PR #11274 (releasenotes/notes/ad-annotations-v2-a897fabaf00623c0.yaml), released in Agent 7.36
#: (DataDog/documentation PR #13807 "Document AD annotations v2 (Agent 7.36+)"); an older agent
#: ignores it (Agent 6 is built from the same tree at the same minor, 6.36 with 7.36, as the other
#: `*_SINCE` facts here). The agent reads these from pods (the kubelet's pod list), never from a workload's
#: own metadata: on a Deployment they belong in the pod template (DataDog/documentation PR #1260,
#: "the agent wouldn't check the deployments metadata, just the pods metadata"). `%%host%%` in
#: them is the pod's IP: such an endpoint is the pod itself, not a Service.
AD_PREFIX = "ad.datadoghq.com/"
AD_V1_KEYS = ("check_names", "init_configs", "instances")
AD_V2_KEY = "checks"
AD_V2_SINCE: dict[int, tuple[int, int]] = {6: (6, 36), 7: (7, 36)}

#: The ConfigMap the Helm chart renders from `datadog.confd` ("Each key becomes a file in
#: /conf.d"; helm-charts templates/_daemonset-volumes-linux.yaml volume `confd`).
HELM_CONFD_VOLUME = "confd"

# -- the istio check's instance options ------------------------------------------------------

#: Endpoint options of the check and the era they belong to (integrations-core istio
#: conf.yaml.example: 2019 legacy (0057a837, a68858d7) `istio_mesh_endpoint` 42422 and
#: `mixer_endpoint` 15014 ("If using Istio < v1.1, replace port 15014 with port 9093"),
#: `pilot_endpoint` / `galley_endpoint`; CHANGELOG 2.4.0 "Support citadel endpoint"; current
#: (4c542b82) `istiod_endpoint` "Only available for Istio >= v1.5" and `istio_mesh_endpoint` on the
#: sidecar 15020). `istio_mesh_endpoint` belongs to both eras: its port decides.
ENDPOINT_KEYS = (
    "istio_mesh_endpoint",
    "mixer_endpoint",
    "galley_endpoint",
    "pilot_endpoint",
    "citadel_endpoint",
    "istiod_endpoint",
)
MIXER_ERA_KEYS = ("mixer_endpoint", "galley_endpoint", "pilot_endpoint", "citadel_endpoint")
ISTIOD_ERA_KEYS = ("istiod_endpoint",)

#: The Service each legacy key names upstream (conf.yaml.example a68858d7; 1.0.7 Services).
KEY_COMPONENT = {
    "mixer_endpoint": "istio-telemetry",
    "pilot_endpoint": "istio-pilot",
    "galley_endpoint": "istio-galley",
    "citadel_endpoint": "istio-citadel",
    "istiod_endpoint": "istiod",
}

#: Ports of `istio_mesh_endpoint` and the era they mean: Mixer's prometheus adapter on
#: istio-telemetry 42422 (istio 1.0.7 charts/mixer/templates/service.yaml), the sidecar's Envoy
#: stats 15090 and merged metrics 15020 (`/stats/prometheus`; istio auto_conf.yaml).
MESH_PORT_MIXER = 42422
MESH_PORTS_SIDECAR = (15020, 15090)

#: Agent versions (6.x and 7.x were released together with the same integrations): the check's
#: `istiod_endpoint` and its `auto_conf.yaml` (sidecars, `ad_identifiers: [proxyv2]`) arrived with
#: integrations-core istio 3.1.0 ("Support istiod metrics", "Add autodiscovery config"), first
#: shipped in Agent 7.20.0 (istio CHANGELOG 3.2.1 / Agent 7.20.0); `use_openmetrics` with 3.14.0
#: (Agent 7.31.0).
ISTIOD_ENDPOINT_SINCE = {6: (6, 20), 7: (7, 20)}
AUTO_CONF_SINCE = {6: (6, 20), 7: (7, 20)}
OPENMETRICS_SINCE = {7: (7, 31)}
#: The image's istio auto_conf.yaml scrapes the merged 15020 from integrations-core istio 4.3.1,
#: first in Agent 7.44.0 (istio CHANGELOG 4.3.1 "Add port for merged telemetry endpoint in Istio
#: auto_conf", PR #13204); before, Envoy's 15090 (issue #13047: the `istio.mesh.agent.*` metrics
#: were missing). Which integrations Agent 6 releases of that time ship is not verified here.
AUTO_CONF_MERGED_PORT_SINCE: dict[int, tuple[int, int]] = {7: (7, 44)}
#: The env var listing checks whose auto_conf.yaml the agent skips (config_reader.go
#: `ignore_autoconf`).
IGNORE_AUTOCONF_ENV = "DD_IGNORE_AUTOCONF"
