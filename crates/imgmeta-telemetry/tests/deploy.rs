//! The deployable stack (`deploy/`, `docker-compose.yml`, `Dockerfile.cuda`) stays in step with
//! the code: the dashboard queries only metrics this crate names, the manifests parse and carry
//! the probes, requests, scaling and GPU settings the README promises, and Docker Compose accepts
//! the compose file.

use serde::Deserialize;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use imgmeta_telemetry as metric;

/// Every metric name the code records. A new constant in `lib.rs` belongs here too before a
/// dashboard may use it.
const METRICS: &[&str] = &[
    metric::HTTP_REQUESTS,
    metric::HTTP_DURATION,
    metric::JOBS_SUBMITTED,
    metric::JOBS_SUCCEEDED,
    metric::JOBS_FAILED,
    metric::JOBS_RETRIED,
    metric::JOBS_CANCELLED,
    metric::REQUEST_ERRORS,
    metric::JOBS_IN_FLIGHT,
    metric::STAGE_DURATION,
    metric::BYTES_FETCHED,
    metric::QUEUE_DEPTH,
    metric::OUTBOX_BACKLOG,
    metric::MODEL_LOAD,
];

/// The histograms among them: only these have `_bucket`, `_sum` and `_count` series.
const HISTOGRAMS: &[&str] = &[metric::HTTP_DURATION, metric::STAGE_DURATION];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file (Kubernetes files hold several, separated by `---`).
fn yaml_documents(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            Yaml::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|document| !document.is_null())
        .collect()
}

fn yaml_files_under(relative: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![repo_root().join(relative)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn k8s_objects() -> Vec<Yaml> {
    yaml_files_under("deploy/k8s")
        .iter()
        .flat_map(|path| yaml_documents(path))
        .collect()
}

fn object<'a>(objects: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("deploy/k8s has no {kind} named {name}"))
}

fn containers(deployment: &Yaml) -> Vec<&Yaml> {
    let spec = &deployment["spec"]["template"]["spec"];
    let all = [&spec["initContainers"], &spec["containers"]];
    all.into_iter()
        .filter_map(Yaml::as_sequence)
        .flatten()
        .collect()
}

fn env<'a>(container: &'a Yaml, name: &str) -> Option<&'a str> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|v| v["name"].as_str() == Some(name))?["value"]
        .as_str()
}

fn port_of(address: &str) -> u64 {
    let (_, port) = address
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address} has no port"));
    port.parse().unwrap_or_else(|e| panic!("{address}: {e}"))
}

fn dashboard() -> Json {
    serde_json::from_str(&read("deploy/grafana/dashboards/imgmeta.json")).expect("dashboard JSON")
}

/// Every PromQL expression of the dashboard's panels, rows' children included.
fn dashboard_queries(dashboard: &Json) -> Vec<String> {
    let mut panels: Vec<&Json> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    let mut queries = Vec::new();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(
                target["expr"]
                    .as_str()
                    .expect("every target has an expr")
                    .to_owned(),
            );
        }
    }
    queries
}

/// The `imgmeta_*` series names a PromQL expression mentions.
fn series_names(query: &str) -> Vec<&str> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("imgmeta_") {
        let preceded_by_name = rest[..start].chars().next_back().is_some_and(is_name_char);
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_name_char(c)).unwrap_or(tail.len());
        if !preceded_by_name {
            names.push(&tail[..end]);
        }
        rest = &tail[end..];
    }
    names
}

fn is_recorded_series(name: &str) -> bool {
    METRICS.contains(&name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| HISTOGRAMS.contains(&base))
        })
}

#[test]
fn every_metric_the_dashboard_queries_is_one_the_code_records() {
    let queries = dashboard_queries(&dashboard());

    let unknown: BTreeSet<&str> = queries
        .iter()
        .flat_map(|q| series_names(q))
        .filter(|name| !is_recorded_series(name))
        .collect();

    assert!(!queries.is_empty(), "the dashboard has no queries");
    assert!(
        unknown.is_empty(),
        "the dashboard queries series the code never records: {unknown:?}"
    );
}

#[test]
fn a_series_name_check_rejects_names_the_code_does_not_record() {
    let query =
        "sum(rate(imgmeta_jobs_failed_total_count[5m])) + imgmeta_stage_duration_seconds_sum";

    let names = series_names(query);

    assert_eq!(
        names,
        [
            "imgmeta_jobs_failed_total_count",
            "imgmeta_stage_duration_seconds_sum"
        ]
    );
    assert!(
        !is_recorded_series(names[0]),
        "a counter has no _count series"
    );
    assert!(is_recorded_series(names[1]));
}

#[test]
fn the_dashboard_shows_throughput_latency_errors_by_code_queue_depth_and_stage_timings() {
    let queries = dashboard_queries(&dashboard());
    let some_query = |what: &str, parts: &[&str]| {
        assert!(
            queries
                .iter()
                .any(|q| parts.iter().all(|part| q.contains(part))),
            "no dashboard query shows {what} (one containing all of {parts:?})"
        );
    };

    some_query("throughput", &["rate(", metric::JOBS_SUCCEEDED]);
    some_query("HTTP throughput", &["rate(", metric::HTTP_REQUESTS]);
    some_query(
        "latency percentiles",
        &["histogram_quantile(0.99", metric::HTTP_DURATION],
    );
    some_query(
        "latency percentiles",
        &["histogram_quantile(0.5", metric::HTTP_DURATION],
    );
    some_query("errors by code", &["by (code)", metric::JOBS_FAILED]);
    some_query("queue depth", &[metric::QUEUE_DEPTH]);
    some_query(
        "stage timings",
        &["histogram_quantile(", "stage", metric::STAGE_DURATION],
    );
}

#[test]
fn every_dashboard_panel_reads_the_selectable_prometheus_data_source() {
    let dashboard = dashboard();
    let variable = dashboard["templating"]["list"]
        .as_array()
        .expect("templating list")
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");

    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queried = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = &panel["title"];
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title}");
        assert!(
            panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "panel {title}"
        );
        queried += 1;
    }

    assert_eq!(variable["query"], "prometheus");
    assert!(queried >= 5, "only {queried} panels with queries");
}

#[test]
fn grafana_provisioning_matches_the_mounts_and_services_of_the_compose_file() {
    let compose: Yaml = serde_norway::from_str(&read("docker-compose.yml")).expect("compose YAML");
    let grafana = &compose["services"]["grafana"];
    let mounts: Vec<&str> = grafana["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let provider =
        &yaml_documents(&repo_root().join("deploy/grafana/provisioning/dashboards/imgmeta.yml"))[0];
    let source = &yaml_documents(
        &repo_root().join("deploy/grafana/provisioning/datasources/prometheus.yml"),
    )[0];

    let dashboards_dir = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let prometheus_url = source["datasources"][0]["url"]
        .as_str()
        .expect("data source url");

    assert!(
        mounts.contains(&format!("./deploy/grafana/dashboards:{dashboards_dir}:ro").as_str()),
        "{mounts:?}"
    );
    assert!(
        mounts.contains(&"./deploy/grafana/provisioning:/etc/grafana/provisioning:ro"),
        "{mounts:?}"
    );
    assert_eq!(prometheus_url, "http://prometheus:9090");
    assert!(
        compose["services"]["prometheus"].is_mapping(),
        "compose has no prometheus service"
    );
}

#[test]
fn prometheus_scrapes_the_ports_the_api_and_workers_serve_metrics_on() {
    let compose: Yaml = serde_norway::from_str(&read("docker-compose.yml")).expect("compose YAML");
    let api_port = port_of(
        compose["services"]["api"]["environment"]["IMGMETA_HTTP_ADDR"]
            .as_str()
            .expect("api address"),
    );
    let worker_port = port_of(
        compose["services"]["worker"]["environment"]["IMGMETA_METRICS_ADDR"]
            .as_str()
            .expect("worker metrics address"),
    );
    let config = &yaml_documents(&repo_root().join("deploy/prometheus/prometheus.yml"))[0];
    let jobs = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    let scraped = |service: &str| -> Option<u64> {
        jobs.iter()
            .flat_map(|job| job["dns_sd_configs"].as_sequence().into_iter().flatten())
            .find_map(|sd| {
                let names = sd["names"].as_sequence()?;
                names
                    .iter()
                    .any(|n| n.as_str() == Some(service))
                    .then(|| sd["port"].as_u64())
                    .flatten()
            })
    };

    assert_eq!(scraped("api"), Some(api_port));
    assert_eq!(scraped("worker"), Some(worker_port));
}

#[test]
fn every_prometheus_and_kubernetes_yaml_document_parses_and_names_its_kind() {
    let mut files = yaml_files_under("deploy/prometheus");
    files.extend(yaml_files_under("deploy/k8s"));
    files.extend(yaml_files_under("deploy/grafana/provisioning"));

    let mut documents = 0;
    for path in &files {
        for document in yaml_documents(path) {
            documents += 1;
            if path.starts_with(repo_root().join("deploy/k8s")) {
                assert!(
                    document["apiVersion"].is_string(),
                    "{}: no apiVersion",
                    path.display()
                );
                assert!(document["kind"].is_string(), "{}: no kind", path.display());
            }
        }
    }

    assert!(
        files.len() >= 8,
        "only {} YAML files under deploy/",
        files.len()
    );
    assert!(
        documents > files.len(),
        "the Kubernetes files hold several documents each"
    );
}

#[test]
fn the_kustomization_lists_every_kubernetes_manifest() {
    let dir = repo_root().join("deploy/k8s");
    let kustomization = &yaml_documents(&dir.join("kustomization.yaml"))[0];
    let listed: BTreeSet<&str> = kustomization["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();

    let present: BTreeSet<String> = yaml_files_under("deploy/k8s")
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .filter(|name| name != "kustomization.yaml")
        .collect();

    assert_eq!(listed, present.iter().map(String::as_str).collect());
}

#[test]
fn the_api_deployment_is_probed_on_healthz_and_readyz_behind_a_service() {
    let objects = k8s_objects();
    let deployment = object(&objects, "Deployment", "imgmeta-api");
    let service = object(&objects, "Service", "imgmeta-api");
    let api = containers(deployment)
        .into_iter()
        .find(|c| c["name"] == "api")
        .expect("api container");

    assert_eq!(api["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(api["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(api["args"][0], "api");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        port_of(env(api, "IMGMETA_HTTP_ADDR").expect("IMGMETA_HTTP_ADDR")),
        8080
    );
}

#[test]
fn every_container_requests_cpu_and_memory() {
    let objects = k8s_objects();
    let deployments: Vec<&Yaml> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .collect();

    for deployment in &deployments {
        for container in containers(deployment) {
            let requests = &container["resources"]["requests"];
            let which = format!(
                "{} / {}",
                deployment["metadata"]["name"].as_str().unwrap_or("?"),
                container["name"].as_str().unwrap_or("?")
            );
            assert!(requests["cpu"].is_string(), "{which}: no cpu request");
            assert!(requests["memory"].is_string(), "{which}: no memory request");
            assert!(
                container["resources"]["limits"]["memory"].is_string(),
                "{which}: no memory limit"
            );
        }
    }

    assert_eq!(deployments.len(), 3, "api, worker and worker-gpu");
}

#[test]
fn workers_are_scaled_by_keda_on_the_length_of_the_jobs_and_bulk_queues() {
    let objects = k8s_objects();
    let prefix = object(&objects, "ConfigMap", "imgmeta-config")["data"]["IMGMETA_QUEUE"]
        .as_str()
        .expect("IMGMETA_QUEUE");

    for name in ["imgmeta-worker", "imgmeta-worker-gpu"] {
        let scaled = object(&objects, "ScaledObject", name);
        let target = scaled["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .expect("scaleTargetRef");
        let deployment = object(&objects, "Deployment", target);
        let trigger = &scaled["spec"]["triggers"][0];
        let auth = trigger["authenticationRef"]["name"]
            .as_str()
            .expect("authenticationRef");

        assert_eq!(trigger["type"], "rabbitmq", "{name}");
        assert_eq!(trigger["metadata"]["mode"], "QueueLength", "{name}");
        assert_eq!(
            trigger["metadata"]["queueName"].as_str(),
            Some(format!("{prefix}.jobs").as_str()),
            "{name}"
        );
        let bulk = &scaled["spec"]["triggers"][1];
        assert_eq!(bulk["type"], "rabbitmq", "{name}");
        assert_eq!(
            bulk["metadata"]["queueName"].as_str(),
            Some(format!("{prefix}.bulk").as_str()),
            "{name}: batch items scale workers too"
        );
        assert!(
            deployment["spec"]["replicas"].is_null(),
            "{name}: KEDA owns the replica count"
        );
        assert_eq!(
            object(&objects, "TriggerAuthentication", auth)["spec"]["secretTargetRef"][0]["parameter"],
            "host"
        );
        assert_eq!(containers(deployment)[0]["args"][0], "worker", "{name}");
    }
}

#[test]
fn the_gpu_worker_asks_for_an_nvidia_gpu_and_runs_the_cuda_build_on_it() {
    let objects = k8s_objects();
    let worker = containers(object(&objects, "Deployment", "imgmeta-worker-gpu"))[0];
    let dockerfile = read("Dockerfile.cuda");

    assert!(
        worker["resources"]["limits"]["nvidia.com/gpu"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    );
    assert_eq!(env(worker, "IMGMETA_DEVICE"), Some("cuda"));
    assert_eq!(worker["image"], "imgmeta-cuda");
    assert!(
        dockerfile.contains("--features cuda -p imgmeta-cli"),
        "Dockerfile.cuda does not build the cuda feature"
    );
}

#[test]
fn scraped_pods_announce_the_port_their_metrics_are_served_on() {
    let objects = k8s_objects();

    for deployment in objects.iter().filter(|o| o["kind"] == "Deployment") {
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        let name = deployment["metadata"]["name"].as_str().unwrap_or("?");
        let announced: u64 = annotations["prometheus.io/port"]
            .as_str()
            .expect("port annotation")
            .parse()
            .expect("a port");
        let main = containers(deployment)
            .into_iter()
            .find(|c| c["args"][0] != "migrate")
            .expect("a main container");
        let served = env(main, "IMGMETA_METRICS_ADDR")
            .or_else(|| env(main, "IMGMETA_HTTP_ADDR"))
            .expect("an address");

        assert_eq!(annotations["prometheus.io/scrape"], "true", "{name}");
        assert_eq!(port_of(served), announced, "{name}");
    }
}

#[test]
fn postgres_and_rabbitmq_are_referenced_as_external_services() {
    let objects = k8s_objects();

    for name in ["postgres", "rabbitmq"] {
        let service = object(&objects, "Service", name);
        assert_eq!(service["spec"]["type"], "ExternalName", "{name}");
        assert!(service["spec"]["externalName"].is_string(), "{name}");
    }
    assert!(
        !objects.iter().any(|o| o["kind"] == "StatefulSet"),
        "the shared state is not deployed here"
    );
}

/// `docker compose` (v2) when its plugin is installed, else `docker-compose` (v1).
fn compose_command() -> Option<Vec<&'static str>> {
    let answers = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if answers("docker", &["compose", "version"]) {
        Some(vec!["docker", "compose"])
    } else if answers("docker-compose", &["version"]) {
        Some(vec!["docker-compose"])
    } else {
        None
    }
}

#[test]
fn docker_compose_accepts_the_compose_file_with_prometheus_and_grafana() {
    let command = compose_command().expect(
        "neither `docker compose` nor `docker-compose` runs here: install Debian's `docker-compose` \
         package (apt-get install docker-compose) or the Docker Compose v2 plugin",
    );

    let output = Command::new(command[0])
        .args(&command[1..])
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(repo_root())
        .output()
        .expect("run docker compose config");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{command:?} config refused docker-compose.yml:\n{stderr}"
    );
    let resolved: Yaml = serde_norway::from_slice(&output.stdout).expect("resolved compose YAML");
    let services = &resolved["services"];
    for service in [
        "postgres",
        "rabbitmq",
        "migrate",
        "api",
        "worker",
        "prometheus",
        "grafana",
    ] {
        assert!(
            services[service].is_mapping(),
            "no {service} service in the resolved file"
        );
    }
    assert_eq!(
        services["worker"]["environment"]["IMGMETA_METRICS_ADDR"],
        "0.0.0.0:9091"
    );
    assert!(
        services["worker"]["environment"]["IMGMETA_AMQP_URL"].is_string(),
        "the shared settings are merged in"
    );
}

/// Every deployment has a way in: Compose's API reads the admin token from the file its
/// one-shot `admin-token` service writes (into a volume both mount), and Kubernetes' API takes
/// it from the Secret `imgmeta-admin-token`.
#[test]
fn every_deployment_gives_the_api_an_admin_token() {
    let compose: Yaml = serde_norway::from_str(&read("docker-compose.yml")).expect("compose YAML");
    let services = &compose["services"];
    let api = &services["api"];
    let token_file = api["environment"]["IMGMETA_ADMIN_TOKEN_FILE"]
        .as_str()
        .expect("the compose api reads IMGMETA_ADMIN_TOKEN_FILE");
    let one_shot = &services["admin-token"];
    let command: Vec<&str> = one_shot["command"]
        .as_sequence()
        .expect("admin-token command")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(command, ["admin-token", "--file", token_file]);
    assert_eq!(
        api["depends_on"]["admin-token"]["condition"],
        "service_completed_successfully"
    );
    let mounts = |service: &Yaml| -> Vec<(String, String)> {
        service["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Yaml::as_str)
            .map(|m| {
                let mut parts = m.split(':');
                (
                    parts.next().unwrap_or("").to_owned(),
                    parts.next().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let token_dir = Path::new(token_file).parent().expect("a directory");
    let shared = |service: &Yaml| {
        mounts(service)
            .into_iter()
            .find(|(_, target)| Path::new(target) == token_dir)
            .map(|(volume, _)| volume)
    };
    let volume = shared(one_shot).expect("admin-token mounts the token's directory");
    assert_eq!(shared(api).as_deref(), Some(volume.as_str()));
    assert!(
        compose["volumes"]
            .as_mapping()
            .is_some_and(|v| v.contains_key(volume.as_str())),
        "volume {volume} is declared"
    );

    let objects = k8s_objects();
    let deployment = object(&objects, "Deployment", "imgmeta-api");
    let api = containers(deployment)
        .into_iter()
        .find(|c| c["name"] == "api")
        .expect("api container");
    let token = api["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find(|v| v["name"] == "IMGMETA_ADMIN_TOKEN")
        .expect("the k8s api sets IMGMETA_ADMIN_TOKEN");
    assert_eq!(
        token["valueFrom"]["secretKeyRef"]["name"],
        "imgmeta-admin-token"
    );
    assert!(
        read("deploy/k8s/README.md").contains("create secret generic imgmeta-admin-token"),
        "the k8s README says how to create the secret"
    );
}
