from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from meshdoctor.errors import UsageError
from meshdoctor.sources.kubeconfig import (
    ClusterConfig,
    ExecPlugin,
    in_cluster_config,
    kubeconfig_paths,
    merge_kubeconfigs,
    resolve,
    with_exec_credentials,
)


def write(path: Path, clusters=(), users=(), contexts=(), current: str | None = None) -> Path:
    doc: dict = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters],
        "users": [{"name": n, "user": u} for n, u in users],
        "contexts": [{"name": n, "context": c} for n, c in contexts],
    }
    if current is not None:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    a = write(
        tmp_path / "a.yaml",
        clusters=[("shared", {"server": "https://a.example:6443"}), ("only-a", {"server": "https://only-a:6443"})],
        users=[("u", {"token": "token-a"})],
        contexts=[("ctx", {"cluster": "shared", "user": "u", "namespace": "ns-a"})],
    )
    b = write(
        tmp_path / "b.yaml",
        clusters=[("shared", {"server": "https://b.example:6443"}), ("only-b", {"server": "https://only-b:6443"})],
        users=[("u", {"token": "token-b"})],
        contexts=[
            ("ctx", {"cluster": "shared", "user": "u", "namespace": "ns-b"}),
            ("ctx-b", {"cluster": "only-b", "user": "u"}),
        ],
        current="ctx-b",
    )
    return a, b


def test_first_file_defining_a_name_wins_and_first_current_context_wins(two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    env = {"KUBECONFIG": f"{a}{os.pathsep}{b}"}
    # a.yaml sets no current-context, so b.yaml's (ctx-b) is used
    config = resolve(environ=env)
    assert (config.context, config.server, config.token, config.namespace) == (
        "ctx-b",
        "https://only-b:6443",
        "token-a",
        "default",
    )
    # the context `ctx` and the cluster `shared` and the user `u` come from a.yaml
    config = resolve(context="ctx", environ=env)
    assert (config.server, config.token, config.namespace) == ("https://a.example:6443", "token-a", "ns-a")
    assert config.source == f"{a}{os.pathsep}{b}"


def test_reversed_order_reverses_the_winner(two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    config = resolve(context="ctx", environ={"KUBECONFIG": f"{b}{os.pathsep}{a}"})
    assert (config.server, config.token, config.namespace) == ("https://b.example:6443", "token-b", "ns-b")


def test_first_current_context_wins_even_if_a_later_file_sets_another(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a", clusters=[("c", {"server": "https://a:1"})], contexts=[("one", {"cluster": "c"})], current="one"
    )
    b = write(
        tmp_path / "b", clusters=[("d", {"server": "https://b:1"})], contexts=[("two", {"cluster": "d"})], current="two"
    )
    assert resolve(environ={"KUBECONFIG": f"{a}{os.pathsep}{b}"}).context == "one"
    assert resolve(environ={"KUBECONFIG": f"{b}{os.pathsep}{a}"}).context == "two"


def test_missing_and_empty_kubeconfig_entries_are_skipped(two_files: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_files
    env = {"KUBECONFIG": f"{tmp_path / 'nope'}{os.pathsep}{os.pathsep}{b}{os.pathsep}{b}"}
    assert kubeconfig_paths(None, env) == [b]
    assert resolve(environ=env).context == "ctx-b"


def test_flag_wins_over_kubeconfig_env(two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    config = resolve(kubeconfig=str(a), context="ctx", environ={"KUBECONFIG": str(b)})
    assert config.server == "https://a.example:6443"
    assert config.source == str(a)


def test_flag_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^kubeconfig .*/absent not found$"):
        resolve(kubeconfig=str(tmp_path / "absent"), environ={})


def test_home_kube_config_is_the_default(tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    write(
        tmp_path / ".kube" / "config",
        clusters=[("c", {"server": "https://home:6443/"})],
        contexts=[("home", {"cluster": "c", "namespace": "ops"})],
        current="home",
    )
    config = resolve(environ={}, home=tmp_path)
    assert (config.context, config.server, config.namespace) == ("home", "https://home:6443", "ops")


def test_unknown_context_names_the_known_ones(two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    with pytest.raises(UsageError) as err:
        resolve(context="prod", environ={"KUBECONFIG": f"{a}{os.pathsep}{b}"})
    assert str(err.value) == f"context 'prod' not found in {a}{os.pathsep}{b} (contexts: ctx, ctx-b)"


def test_no_kubeconfig_and_not_in_a_pod(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        resolve(environ={}, home=tmp_path, service_account_dir=tmp_path / "sa")
    assert str(err.value).startswith("no kubeconfig: ~/.kube/config does not exist")


def test_in_cluster_when_no_kubeconfig(tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("pod-token\n")
    (sa / "ca.crt").write_text("CA")
    (sa / "namespace").write_text("datadog")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = resolve(environ=env, home=tmp_path, service_account_dir=sa)
    assert (config.server, config.context, config.namespace, config.ca_file, config.bearer_token()) == (
        "https://10.96.0.1:443",
        "in-cluster",
        "datadog",
        str(sa / "ca.crt"),
        "pod-token",
    )
    ipv6 = in_cluster_config({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, sa)
    assert ipv6 is not None and ipv6.server == "https://[fd00::1]:443"


def test_credentials_and_relative_paths(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    write(
        folder / "config",
        clusters=[
            ("c", {"server": "https://x:6443", "certificate-authority-data": ca}),
            ("f", {"server": "https://y:6443", "certificate-authority": "ca.pem", "insecure-skip-tls-verify": True}),
        ],
        users=[
            ("cert", {"client-certificate": "u.crt", "client-key": "/abs/u.key"}),
            ("tf", {"tokenFile": "token.txt"}),
        ],
        contexts=[("one", {"cluster": "c", "user": "cert"}), ("two", {"cluster": "f", "user": "tf"})],
        current="one",
    )
    (folder / "token.txt").write_text("from-file\n")
    one = resolve(environ={"KUBECONFIG": str(folder / "config")})
    assert one.ca_data == b"-----BEGIN CERTIFICATE-----\n"
    assert (one.client_cert_file, one.client_key_file) == (str(folder.resolve() / "u.crt"), "/abs/u.key")
    two = resolve(context="two", environ={"KUBECONFIG": str(folder / "config")})
    assert (two.ca_file, two.insecure_skip_tls_verify, two.bearer_token()) == (
        str(folder.resolve() / "ca.pem"),
        True,
        "from-file",
    )


def test_unsupported_auth_provider_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path / "k",
        clusters=[("c", {"server": "https://x:1"})],
        users=[
            ("g", {"auth-provider": {"name": "gcp", "config": {}}}),
            ("o", {"auth-provider": {"name": "oidc", "config": {"id-token": "jwt"}}}),
        ],
        contexts=[("gke", {"cluster": "c", "user": "g"}), ("oidc", {"cluster": "c", "user": "o"})],
        current="gke",
    )
    with pytest.raises(UsageError, match="auth-provider 'gcp' is not supported"):
        resolve(kubeconfig=str(tmp_path / "k"), environ={})
    assert resolve(kubeconfig=str(tmp_path / "k"), context="oidc", environ={}).token == "jwt"


def _plugin(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "plugin.py"
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_exec_plugin_token(tmp_path: Path) -> None:
    _plugin(
        tmp_path,
        (
            "import json, os, sys\n"
            "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
            "assert info['kind'] == 'ExecCredential' and info['spec']['interactive'] is False\n"
            "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential',\n"
            "                  'status': {'token': 'exec-' + os.environ['EXTRA'] + '-' + sys.argv[1]}}))\n"
        ),
    )
    write(
        tmp_path / "k",
        clusters=[("c", {"server": "https://x:1"})],
        users=[
            (
                "e",
                {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "./plugin.py",
                        "args": ["arg"],
                        "env": [{"name": "EXTRA", "value": "env"}],
                    }
                },
            )
        ],
        contexts=[("e", {"cluster": "c", "user": "e"})],
        current="e",
    )
    config = resolve(kubeconfig=str(tmp_path / "k"), environ={})
    assert config.exec_plugin is not None and config.exec_plugin.command == str(tmp_path.resolve() / "plugin.py")
    assert config.token is None
    ready = with_exec_credentials(config, environ={})
    assert (ready.token, ready.exec_plugin) == ("exec-env-arg", None)


def test_exec_plugin_failures_are_one_line(tmp_path: Path) -> None:
    base = ClusterConfig(server="https://x:1", context="c")
    failing = _plugin(
        tmp_path, "import sys\nprint('first', file=sys.stderr)\nprint('token expired', file=sys.stderr)\nsys.exit(3)\n"
    )
    with pytest.raises(UsageError) as err:
        with_exec_credentials(ClusterConfig(**{**base.__dict__, "exec_plugin": ExecPlugin(str(failing))}), environ={})
    assert str(err.value) == f"exec credential plugin '{failing}' failed with exit code 3: token expired"
    with pytest.raises(
        UsageError, match=r"^exec credential plugin 'no-such-plugin-xyz' not found \(brew install it\)$"
    ):
        with_exec_credentials(
            ClusterConfig(
                **{
                    **base.__dict__,
                    "exec_plugin": ExecPlugin("no-such-plugin-xyz", install_hint="brew install it\nmore"),
                }
            ),
            environ={"PATH": str(tmp_path)},
        )
    garbage = _plugin(tmp_path, "print('hello')\n")
    with pytest.raises(UsageError, match="did not print an ExecCredential"):
        with_exec_credentials(ClusterConfig(**{**base.__dict__, "exec_plugin": ExecPlugin(str(garbage))}), environ={})


def test_merge_records_origins(two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    merged = merge_kubeconfigs([a, b])
    assert sorted(merged["clusters"]) == ["only-a", "only-b", "shared"]
    assert merged["origins"][("clusters", "shared")] == a
    assert merged["origins"][("contexts", "ctx-b")] == b
    assert json.dumps(merged["current-context"]) == '"ctx-b"'
