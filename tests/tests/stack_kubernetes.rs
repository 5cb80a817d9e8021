//! The Kubernetes tiers of `otel-collector/` (`kustomization.yaml` and
//! `k8s/`): the agents' DaemonSet and the gateways' Deployment run the
//! image compose runs with the configurations tested elsewhere, on their
//! ports, queue volumes and environment, and the agents find the gateways
//! through a headless Service.
//!
//! Runs kustomize (built by `stack/local/install`): `kustomize build
//! otel-collector/` succeeds and its generated ConfigMaps carry
//! `agent.yaml` and `gateway.yaml` byte for byte, under the names the
//! workloads mount.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use otelwire_tests::programs;
use otelwire_tests::stack_files::{
    COMPOSE, CollectorConfig, assert_pinned, at, env_refs, files, keys, read, root, run_tool,
    str_at, strings, yaml, yaml_documents,
};
use serde_yaml_ng::Value;

const KUSTOMIZATION: &str = "otel-collector/kustomization.yaml";

/// The two tiers: workload manifest, its kind, the ConfigMap it mounts and
/// the configuration file that ConfigMap is generated from.
const TIERS: [(&str, &str, &str, &str); 2] = [
    (
        "otel-collector/k8s/agent-daemonset.yaml",
        "DaemonSet",
        "otel-agent-config",
        "agent.yaml",
    ),
    (
        "otel-collector/k8s/gateway-deployment.yaml",
        "Deployment",
        "otel-gateway-config",
        "gateway.yaml",
    ),
];

/// The collector container of a workload manifest.
fn collector_container<'a>(workload: &'a Value, file: &str) -> &'a Value {
    at(workload, &["spec", "template", "spec", "containers"])
        .and_then(Value::as_sequence)
        .and_then(|cs| {
            cs.iter()
                .find(|c| at(c, &["name"]).and_then(Value::as_str) == Some("otelcol"))
        })
        .unwrap_or_else(|| panic!("{file}: no container otelcol"))
}

/// The items of the sequence at `path`; panics naming `file` if there is
/// none.
fn seq<'a>(v: &'a Value, path: &[&str], file: &str) -> &'a Vec<Value> {
    at(v, path)
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{file}: no list at {}", path.join(".")))
}

/// The item of the sequence at `path` whose `name` is `name`.
fn named<'a>(v: &'a Value, path: &[&str], name: &str, file: &str) -> &'a Value {
    seq(v, path, file)
        .iter()
        .find(|x| at(x, &["name"]).and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("{file}: no {name} in {}", path.join(".")))
}

/// The directory a container's `--config=` file is in, and the ConfigMap
/// the workload mounts there.
fn config_map_of(workload: &Value, file: &str) -> (String, String) {
    let c = collector_container(workload, file);
    let args = strings(at(c, &["args"]));
    let config_path = args
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .unwrap_or_else(|| panic!("{file}: --config"));
    let (dir, key) = config_path
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("{file}: --config={config_path}"));
    assert_eq!(
        key, "config.yaml",
        "{file}: the key of the generated ConfigMap"
    );
    let mount = seq(c, &["volumeMounts"], file)
        .iter()
        .find(|m| at(m, &["mountPath"]).and_then(Value::as_str) == Some(dir))
        .unwrap_or_else(|| panic!("{file}: nothing mounted at {dir}"));
    let volume = named(
        workload,
        &["spec", "template", "spec", "volumes"],
        str_at(mount, &["name"], file),
        file,
    );
    let map = at(volume, &["configMap", "name"])
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{file}: {dir} must hold a ConfigMap"));
    (dir.to_owned(), map.to_owned())
}

#[test]
fn kubernetes_tiers_are_generated_from_the_tested_configurations() {
    let kust = yaml(KUSTOMIZATION);
    let ns = str_at(&kust, &["namespace"], KUSTOMIZATION);
    let resources = strings(at(&kust, &["resources"]));
    for r in &resources {
        assert!(
            root().join("otel-collector").join(r).is_file(),
            "{KUSTOMIZATION}: {r} does not exist"
        );
    }
    let listed: BTreeSet<String> = resources
        .iter()
        .map(|r| format!("otel-collector/{r}"))
        .collect();
    for f in files("otel-collector/k8s", ".yaml") {
        assert!(listed.contains(&f), "{KUSTOMIZATION} does not deploy {f}");
    }
    // The ConfigMaps are made from the configuration files themselves, so
    // what is deployed is what was tested.
    let generated: BTreeMap<String, Vec<String>> =
        seq(&kust, &["configMapGenerator"], KUSTOMIZATION)
            .iter()
            .map(|g| {
                (
                    str_at(g, &["name"], KUSTOMIZATION).to_owned(),
                    strings(at(g, &["files"])),
                )
            })
            .collect();
    let compose = yaml(COMPOSE);
    let collector_image = str_at(&compose, &["services", "otel-collector", "image"], COMPOSE);
    for (workload_file, kind_name, configmap, config_file) in TIERS {
        assert_eq!(
            generated.get(configmap),
            Some(&vec![format!("config.yaml={config_file}")]),
            "{KUSTOMIZATION}: {configmap} must be generated from {config_file}"
        );
        let config = CollectorConfig::read(&format!("otel-collector/{config_file}"));
        let w = yaml(workload_file);
        assert_eq!(str_at(&w, &["kind"], workload_file), kind_name);
        let spec = at(&w, &["spec", "template", "spec"])
            .unwrap_or_else(|| panic!("{workload_file}: spec.template.spec"));
        let c = collector_container(&w, workload_file);
        assert_eq!(
            str_at(c, &["image"], workload_file),
            collector_image,
            "{workload_file}: the image compose runs"
        );
        let (dir, mounted) = config_map_of(&w, workload_file);
        assert_eq!(
            mounted, configmap,
            "{workload_file}: {dir} must hold ConfigMap {configmap}"
        );
        // The persistent queue has a writable volume.
        let queue_dir = config.file_storage_directory();
        let queue_mount = seq(c, &["volumeMounts"], workload_file)
            .iter()
            .find(|m| at(m, &["mountPath"]).and_then(Value::as_str) == Some(queue_dir.as_str()))
            .unwrap_or_else(|| panic!("{workload_file}: nothing mounted at {queue_dir}"));
        let queue = named(
            &w,
            &["spec", "template", "spec", "volumes"],
            str_at(queue_mount, &["name"], workload_file),
            workload_file,
        );
        assert!(
            at(queue, &["hostPath"]).is_some() || at(queue, &["emptyDir"]).is_some(),
            "{workload_file}: the queue needs a volume"
        );
        // The ports the configuration opens are the container's.
        let ports: BTreeSet<u16> = seq(c, &["ports"], workload_file)
            .iter()
            .map(|p| {
                at(p, &["containerPort"])
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or_else(|| panic!("{workload_file}: containerPort"))
            })
            .collect();
        assert_eq!(ports, config.ports(), "{workload_file}: container ports");
        let env: BTreeMap<String, String> = seq(c, &["env"], workload_file)
            .iter()
            .map(|e| {
                (
                    str_at(e, &["name"], workload_file).to_owned(),
                    str_at(e, &["value"], workload_file).to_owned(),
                )
            })
            .collect();
        assert!(
            env.contains_key("GOMEMLIMIT"),
            "{workload_file}: GOMEMLIMIT"
        );
        assert!(
            at(c, &["resources", "limits", "memory"]).is_some(),
            "{workload_file}: memory_limiter needs a memory limit"
        );
        // The configuration's ${env:NAME:-default} references: where the
        // collector listens and keeps its queue (OTELCOL_*, for the local
        // run) stay at the defaults the ports and volumes above are;
        // everything else, the addresses of other services, is set in the
        // manifest, to the default, where a user sees what to change.
        for (name, default) in env_refs(&config.doc) {
            let set = env.get(&name);
            if name.starts_with("OTELCOL_") {
                assert!(
                    set.is_none() || set == default.as_ref(),
                    "{workload_file}: env {name} moves the collector off the ports and volumes of its manifest"
                );
            } else {
                assert_eq!(
                    set,
                    default.as_ref(),
                    "{workload_file}: env {name} must be set to the default of {}",
                    config.file
                );
            }
        }
        assert_eq!(
            at(spec, &["securityContext", "runAsUser"]).and_then(Value::as_u64),
            Some(10001),
            "{workload_file}: the collector image's user"
        );
        for c in at(spec, &["initContainers"])
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .chain(seq(spec, &["containers"], workload_file))
        {
            assert_pinned(str_at(c, &["image"], workload_file), workload_file);
        }
    }
    // The agents find the gateways through a headless Service selecting them.
    let svc = yaml("otel-collector/k8s/gateway-service.yaml");
    assert_eq!(
        at(&svc, &["spec", "clusterIP"]).and_then(Value::as_str),
        Some("None"),
        "headless"
    );
    let gw = yaml("otel-collector/k8s/gateway-deployment.yaml");
    let selector = at(&svc, &["spec", "selector"])
        .and_then(Value::as_mapping)
        .expect("gateway-service.yaml: spec.selector");
    for (k, v) in selector {
        let k = k.as_str().expect("a label name");
        assert_eq!(
            at(&gw, &["spec", "template", "metadata", "labels", k]),
            Some(v),
            "the Service selects the gateway pods"
        );
    }
    let agent_file = "otel-collector/k8s/agent-daemonset.yaml";
    let agent = yaml(agent_file);
    let gateway_host = str_at(
        named(
            collector_container(&agent, agent_file),
            &["env"],
            "OTEL_GATEWAY_HOST",
            agent_file,
        ),
        &["value"],
        agent_file,
    );
    assert_eq!(
        gateway_host,
        format!(
            "{}.{ns}.svc.cluster.local",
            str_at(&svc, &["metadata", "name"], "gateway-service.yaml")
        )
    );
}

#[test]
fn kustomize_builds_the_tiers_with_the_configurations_byte_for_byte() {
    let Some(bins) = programs::binaries() else {
        return;
    };
    let (ok, out) = run_tool(
        Command::new(&bins.kustomize)
            .arg("build")
            .arg(root().join("otel-collector")),
    );
    assert!(ok, "kustomize build otel-collector/:\n{out}");
    let docs = yaml_documents(&out, "kustomize build otel-collector/");
    let ns = str_at(&yaml(KUSTOMIZATION), &["namespace"], KUSTOMIZATION).to_owned();
    let of_kind = |kind: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|d| at(d, &["kind"]).and_then(Value::as_str) == Some(kind))
            .collect()
    };
    // Everything the kustomization lists, in its namespace.
    let kinds: BTreeSet<&str> = docs
        .iter()
        .filter_map(|d| at(d, &["kind"]).and_then(Value::as_str))
        .collect();
    for k in [
        "Namespace",
        "DaemonSet",
        "Deployment",
        "Service",
        "ConfigMap",
    ] {
        assert!(kinds.contains(k), "kustomize build made no {k}: {kinds:?}");
    }
    for d in &docs {
        if at(d, &["kind"]).and_then(Value::as_str) != Some("Namespace") {
            assert_eq!(
                at(d, &["metadata", "namespace"]).and_then(Value::as_str),
                Some(ns.as_str()),
                "kustomize build: {} not in namespace {ns}",
                str_at(d, &["metadata", "name"], "kustomize build")
            );
        }
    }
    for (workload_file, kind_name, configmap, config_file) in TIERS {
        // One ConfigMap per tier, its name suffixed with a content hash,
        // holding the configuration file exactly.
        let maps: Vec<&Value> = of_kind("ConfigMap")
            .into_iter()
            .filter(|m| {
                str_at(m, &["metadata", "name"], "kustomize build")
                    .strip_prefix(configmap)
                    .is_some_and(|rest| rest.starts_with('-'))
            })
            .collect();
        assert_eq!(
            maps.len(),
            1,
            "kustomize build: one ConfigMap {configmap}-<hash>"
        );
        let map = maps[0];
        let name = str_at(map, &["metadata", "name"], "kustomize build");
        assert_eq!(
            keys(at(map, &["data"])),
            ["config.yaml"],
            "kustomize build: {name} holds config.yaml only"
        );
        let data = str_at(map, &["data", "config.yaml"], name);
        let file = read(&format!("otel-collector/{config_file}"));
        assert!(
            data == file,
            "kustomize build: ConfigMap {name} is not otel-collector/{config_file} byte for byte ({} bytes, the file {})",
            data.len(),
            file.len()
        );
        // The workload mounts that very ConfigMap (the hashed name), so a
        // change of the file rolls the pods.
        let built_name =
            str_at(&yaml(workload_file), &["metadata", "name"], workload_file).to_owned();
        let workload = of_kind(kind_name)
            .into_iter()
            .find(|w| {
                at(w, &["metadata", "name"]).and_then(Value::as_str) == Some(built_name.as_str())
            })
            .unwrap_or_else(|| panic!("kustomize build: no {kind_name} {built_name}"));
        let (_, mounted) = config_map_of(workload, &format!("kustomize build: {kind_name}"));
        assert_eq!(
            mounted, name,
            "kustomize build: {kind_name} {built_name} mounts {mounted}, not the generated {name}"
        );
    }
}
