"""Which cluster to talk to and how: the kubeconfig resolved exactly as kubectl resolves it.

We do this ourselves rather than through the Python client's loader because the client merges
several `KUBECONFIG` files differently from kubectl (client-go `clientcmd.ClientConfigLoadingRules`):
an on-call engineer must reach the same cluster with meshdoctor as with kubectl.

Rules implemented (client-go `tools/clientcmd/loader.go` and `client_config.go`):
- `--kubeconfig FILE` alone, if given (the file must exist);
- else every file of `KUBECONFIG` (split on `os.pathsep`, empty entries and missing files skipped),
  merged: for `clusters`, `users` and `contexts`, the FIRST file defining a name wins, and the
  first file that sets `current-context` wins;
- else `~/.kube/config`;
- when that yields nothing, in-cluster (`KUBERNETES_SERVICE_HOST`/`_PORT` and the service account
  files under /var/run/secrets/kubernetes.io/serviceaccount);
- relative paths in a file (certificate-authority, client-certificate, client-key, tokenFile,
  exec command with a `/`) are relative to the folder of the file that defined them;
- `--context` overrides `current-context`; the namespace is the context's, else `default`.

Credentials: bearer token or tokenFile, client certificate and key (data or file), basic auth,
`exec` plugins (client.authentication.k8s.io ExecCredential; `status.token` and client
certificates), and the `oidc` auth-provider's stored `id-token` (no refresh). Other
auth-providers (gcp, azure) were removed from kubectl too; they are refused with a clear message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from meshdoctor.errors import UsageError

#: The service account folder a pod's containers get (Kubernetes docs, "Accessing the Kubernetes
#: API from a Pod"; client-go rest.InClusterConfig reads the same paths).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

#: How long an exec credential plugin may take before we give up (kubectl has no limit; an
#: interactive login would hang meshdoctor, so we cap it).
EXEC_TIMEOUT_SECONDS = 60.0

IN_CLUSTER = "in-cluster"


@dataclass(frozen=True)
class ExecPlugin:
    """A `users[].user.exec` stanza, with paths resolved."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1"
    install_hint: str = ""
    provide_cluster_info: bool = False


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to open a connection: a plain record, no client object."""

    server: str
    """`https://host:port`, without a trailing slash."""
    context: str
    """The context name used, or `in-cluster`."""
    namespace: str = "default"
    """The context's namespace (`default` when it sets none)."""
    source: str = ""
    """The kubeconfig file(s) read, or `in-cluster`."""
    ca_data: bytes | None = None
    """PEM of the certificate authority, from certificate-authority-data."""
    ca_file: str | None = None
    """Path of the certificate authority file."""
    client_cert_data: bytes | None = None
    client_cert_file: str | None = None
    client_key_data: bytes | None = None
    client_key_file: str | None = None
    token: str | None = None
    """Bearer token (from the kubeconfig, an exec plugin or an oidc id-token)."""
    token_file: str | None = None
    """File holding the bearer token; read at each connection (it may be rotated)."""
    username: str | None = None
    password: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    exec_plugin: ExecPlugin | None = None
    """Run to obtain the credentials (see `with_exec_credentials`)."""

    def bearer_token(self) -> str | None:
        """The token to send, reading `token_file` now if that is where it is."""
        if self.token:
            return self.token
        if self.token_file:
            try:
                return Path(self.token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise UsageError(f"cannot read the token file {self.token_file}: {exc.strerror}") from None
        return None


# -- finding and merging kubeconfig files ------------------------------------------------------


def kubeconfig_paths(flag: str | None, environ: Mapping[str, str], home: Path | None = None) -> list[Path]:
    """The files kubectl would read, in precedence order (existing ones only, except the flag's)."""
    if flag:
        path = Path(flag).expanduser()
        if not path.is_file():
            raise UsageError(f"kubeconfig {flag} not found")
        return [path]
    env_value = environ.get("KUBECONFIG")
    if env_value:
        seen: set[Path] = set()
        paths = []
        for entry in env_value.split(os.pathsep):
            if not entry:
                continue
            path = Path(entry).expanduser()
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            paths.append(path)
        return paths
    default = (home if home is not None else Path.home()) / ".kube" / "config"
    return [default] if default.is_file() else []


_PATH_FIELDS = {
    "cluster": ("certificate-authority",),
    "user": ("client-certificate", "client-key", "tokenFile"),
}


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"kubeconfig {path}{where} is not valid YAML") from None
    if not isinstance(data, dict):
        raise UsageError(f"kubeconfig {path} is not a kubeconfig (a mapping is expected)")
    return data


def _resolve_paths(entry: dict[str, Any], section: str, folder: Path) -> dict[str, Any]:
    entry = dict(entry)
    for key in _PATH_FIELDS.get(section, ()):
        value = entry.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            entry[key] = str(folder / value)
    exec_cfg = entry.get("exec")
    if section == "user" and isinstance(exec_cfg, dict):
        command = exec_cfg.get("command")
        if isinstance(command, str) and "/" in command and not Path(command).is_absolute():
            entry["exec"] = {**exec_cfg, "command": str(folder / command)}
    return entry


def merge_kubeconfigs(paths: Sequence[Path]) -> dict[str, Any]:
    """Merge files as kubectl does: first definition of a name wins; first current-context wins.

    Returns `{"clusters": {name: cluster}, "users": {...}, "contexts": {...},
    "current-context": str, "origins": {("clusters", name): path, ...}}`.
    """
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": "", "origins": {}}
    inner = {"clusters": "cluster", "users": "user", "contexts": "context"}
    for path in paths:
        data = _read_config(path)
        folder = path.resolve().parent
        for section, key in inner.items():
            for named in data.get(section) or []:
                if not isinstance(named, dict) or not isinstance(named.get("name"), str):
                    continue
                name = named["name"]
                if name in merged[section]:
                    continue
                body = named.get(key) or {}
                if not isinstance(body, dict):
                    raise UsageError(f"kubeconfig {path}: {section} entry {name!r} is not a mapping")
                merged[section][name] = _resolve_paths(body, key, folder)
                merged["origins"][(section, name)] = path
        current = data.get("current-context")
        if current and not merged["current-context"]:
            merged["current-context"] = str(current)
    return merged


# -- decoding the entries ----------------------------------------------------------------------


def _b64(value: Any, what: str, origin: Path | None) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except (binascii.Error, ValueError):
        raise UsageError(f"kubeconfig {origin}: {what} is not valid base64") from None


def _exec_plugin(spec: dict[str, Any], user: str) -> ExecPlugin:
    command = spec.get("command")
    if not isinstance(command, str) or not command:
        raise UsageError(f"user {user!r}: exec plugin without a command")
    env = tuple((str(e.get("name")), str(e.get("value", ""))) for e in spec.get("env") or [] if isinstance(e, dict))
    return ExecPlugin(
        command=command,
        args=tuple(str(a) for a in spec.get("args") or []),
        env=env,
        api_version=str(spec.get("apiVersion") or "client.authentication.k8s.io/v1"),
        install_hint=str(spec.get("installHint") or ""),
        provide_cluster_info=bool(spec.get("provideClusterInfo")),
    )


def _auth_provider_token(provider: dict[str, Any], user: str) -> str:
    name = str(provider.get("name") or "")
    config = provider.get("config") or {}
    if name == "oidc" and isinstance(config, dict) and config.get("id-token"):
        return str(config["id-token"])
    if name == "oidc":
        raise UsageError(f"user {user!r}: the oidc auth-provider has no id-token; log in with kubectl first")
    raise UsageError(
        f"user {user!r}: auth-provider {name!r} is not supported (kubectl dropped it as well); "
        "use its exec credential plugin instead (e.g. gke-gcloud-auth-plugin, kubelogin)"
    )


def resolve(
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> ClusterConfig:
    """The cluster, credentials and namespace kubectl would use with these flags."""
    environ = os.environ if environ is None else environ
    paths = kubeconfig_paths(kubeconfig, environ, home)
    merged = merge_kubeconfigs(paths)
    if not merged["contexts"] and not merged["clusters"]:
        if context:
            raise UsageError(f"context {context!r} not found: no kubeconfig ({_where(paths, environ)})")
        in_cluster = in_cluster_config(environ, service_account_dir)
        if in_cluster is not None:
            return in_cluster
        raise UsageError(
            f"no kubeconfig: {_where(paths, environ)}; give --kubeconfig or set KUBECONFIG "
            "(or use --from PATH to check files)"
        )
    source = os.pathsep.join(str(p) for p in paths)
    name = context or merged["current-context"]
    if not name:
        raise UsageError(f"no current context in {source}; give --context (contexts: {_names(merged['contexts'])})")
    ctx = merged["contexts"].get(name)
    if ctx is None:
        raise UsageError(f"context {name!r} not found in {source} (contexts: {_names(merged['contexts'])})")
    cluster_name = ctx.get("cluster")
    cluster = merged["clusters"].get(cluster_name)
    if cluster is None:
        raise UsageError(f"context {name!r} refers to cluster {cluster_name!r}, which is not in {source}")
    user_name = ctx.get("user") or ""
    user = merged["users"].get(user_name) if user_name else {}
    if user is None:
        raise UsageError(f"context {name!r} refers to user {user_name!r}, which is not in {source}")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise UsageError(f"cluster {cluster_name!r} in {source} has no server")
    cluster_origin = merged["origins"].get(("clusters", cluster_name))
    user_origin = merged["origins"].get(("users", user_name))

    config = ClusterConfig(
        server=server,
        context=name,
        namespace=str(ctx.get("namespace") or "default"),
        source=source,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy_url=cluster.get("proxy-url") or None,
        ca_file=cluster.get("certificate-authority") or None,
        ca_data=_b64(cluster["certificate-authority-data"], "certificate-authority-data", cluster_origin)
        if cluster.get("certificate-authority-data")
        else None,
    )
    user = user or {}
    updates: dict[str, Any] = {
        "client_cert_file": user.get("client-certificate") or None,
        "client_key_file": user.get("client-key") or None,
        "token": user.get("token") or None,
        "token_file": user.get("tokenFile") or None,
        "username": user.get("username") or None,
        "password": user.get("password") or None,
    }
    if user.get("client-certificate-data"):
        updates["client_cert_data"] = _b64(user["client-certificate-data"], "client-certificate-data", user_origin)
    if user.get("client-key-data"):
        updates["client_key_data"] = _b64(user["client-key-data"], "client-key-data", user_origin)
    if isinstance(user.get("exec"), dict):
        updates["exec_plugin"] = _exec_plugin(user["exec"], user_name)
    if isinstance(user.get("auth-provider"), dict) and not updates["token"]:
        updates["token"] = _auth_provider_token(user["auth-provider"], user_name)
    return replace(config, **updates)


def _names(entries: Mapping[str, Any]) -> str:
    return ", ".join(sorted(entries)) or "none"


def _where(paths: Sequence[Path], environ: Mapping[str, str]) -> str:
    if environ.get("KUBECONFIG"):
        return f"none of the KUBECONFIG files exist ({environ['KUBECONFIG']})"
    return "~/.kube/config does not exist and this is not a pod (KUBERNETES_SERVICE_HOST unset)"


def in_cluster_config(
    environ: Mapping[str, str], service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> ClusterConfig | None:
    """The pod's own service account, as client-go rest.InClusterConfig builds it; None outside a pod."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT")
    token_file = service_account_dir / "token"
    if not host or not port or not token_file.is_file():
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    namespace_file = service_account_dir / "namespace"
    namespace = namespace_file.read_text(encoding="utf-8").strip() if namespace_file.is_file() else "default"
    ca_file = service_account_dir / "ca.crt"
    return ClusterConfig(
        server=f"https://{host}:{port}",
        context=IN_CLUSTER,
        namespace=namespace or "default",
        source=IN_CLUSTER,
        ca_file=str(ca_file) if ca_file.is_file() else None,
        token_file=str(token_file),
    )


# -- exec credential plugins -------------------------------------------------------------------


def with_exec_credentials(config: ClusterConfig, environ: Mapping[str, str] | None = None) -> ClusterConfig:
    """Run the exec plugin (if any) and return the config with its token / certificate filled in."""
    plugin = config.exec_plugin
    if plugin is None:
        return config
    environ = os.environ if environ is None else environ
    spec: dict[str, Any] = {"interactive": False}
    if plugin.provide_cluster_info:
        cluster: dict[str, Any] = {"server": config.server, "insecure-skip-tls-verify": config.insecure_skip_tls_verify}
        if config.ca_data:
            cluster["certificate-authority-data"] = base64.b64encode(config.ca_data).decode()
        spec["cluster"] = cluster
    exec_info = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec}
    env = dict(environ)
    env.update(dict(plugin.env))
    env["KUBERNETES_EXEC_INFO"] = json.dumps(exec_info)
    argv = [plugin.command, *plugin.args]
    try:
        done = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=EXEC_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError:
        hint = f" ({plugin.install_hint.strip().splitlines()[0]})" if plugin.install_hint.strip() else ""
        raise UsageError(f"exec credential plugin {plugin.command!r} not found{hint}") from None
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"exec credential plugin {plugin.command!r} did not answer within {EXEC_TIMEOUT_SECONDS:.0f}s "
            "(does it need an interactive login? run kubectl once first)"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        raise UsageError(f"exec credential plugin {plugin.command!r} failed with exit code {done.returncode}: {last}")
    try:
        credential = json.loads(done.stdout)
        status = credential["status"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"exec credential plugin {plugin.command!r} did not print an ExecCredential") from None
    token = status.get("token")
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if not token and not (cert and key):
        raise UsageError(f"exec credential plugin {plugin.command!r} returned neither a token nor a client certificate")
    updates: dict[str, Any] = {"exec_plugin": None}
    if token:
        updates["token"] = str(token)
    if cert and key:
        updates["client_cert_data"] = str(cert).encode()
        updates["client_key_data"] = str(key).encode()
    return replace(config, **updates)
