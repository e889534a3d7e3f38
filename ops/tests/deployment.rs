//! The deployment files (`docker-compose.yml`, `Dockerfile`) checked against
//! the code they deploy: the variables each binary reads (from its clap
//! `Config`), the binaries the Cargo manifests declare, the documented ports
//! and databases. Nothing here needs Docker: the files are parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use serde_yaml::Value;

/// Variables the binaries read outside their `Config`:
/// `agora_platform::telemetry::init_logging`.
const PROCESS_VARIABLES: [&str; 2] = ["RUST_LOG", "LOG_FORMAT"];

/// One of the three deployables, as the design documents it.
struct Deployable {
    /// Its service in docker-compose.yml.
    service: &'static str,
    /// Its crate's directory in the workspace.
    crate_dir: &'static str,
    /// The port DESIGN.md ("Running") gives it.
    documented_port: u16,
    /// Its own PostgreSQL database.
    database: &'static str,
    /// Its configuration's clap definition.
    command: fn() -> clap::Command,
}

const DEPLOYABLES: [Deployable; 3] = [
    Deployable {
        service: "auth-service",
        crate_dir: "auth-service",
        documented_port: 8081,
        database: "agora_auth",
        command: <agora_auth_service::Config as CommandFactory>::command,
    },
    Deployable {
        service: "post-service",
        crate_dir: "post-service",
        documented_port: 8082,
        database: "agora_post",
        command: <agora_post_service::Config as CommandFactory>::command,
    },
    Deployable {
        service: "gateway",
        crate_dir: "gateway",
        documented_port: 8080,
        database: "agora_read",
        command: <agora_gateway::Config as CommandFactory>::command,
    },
];

// ---------------------------------------------------------------------------
// docker-compose.yml

#[test]
fn the_compose_file_defines_kafka_postgres_and_the_three_services() {
    let compose = compose();
    let names: BTreeSet<String> = services(&compose).keys().map(text).collect();
    for expected in ["kafka", "postgres", "auth-service", "post-service", "gateway"] {
        assert!(names.contains(expected), "docker-compose.yml has no `{expected}` service (it has {names:?})");
    }
}

#[test]
fn every_variable_set_on_a_service_is_one_its_binary_reads() {
    let compose = compose();
    for deployable in &DEPLOYABLES {
        let read = variables_read(deployable);
        let set = environment(service(&compose, deployable.service));
        let unknown: Vec<&String> = set.keys().filter(|name| !read.contains(name.as_str())).collect();
        assert!(
            unknown.is_empty(),
            "{} sets {unknown:?}, which the binary does not read (it reads {read:?})",
            deployable.service
        );
    }
}

#[test]
fn each_service_environment_parses_as_its_binary_configuration() {
    let compose = compose();
    for deployable in &DEPLOYABLES {
        let arguments = flags_from_environment(deployable, &environment(service(&compose, deployable.service)));
        if let Err(error) = (deployable.command)().try_get_matches_from(&arguments) {
            panic!("{}'s environment is not a valid configuration ({arguments:?}): {error}", deployable.service);
        }
    }
}

#[test]
fn no_service_is_left_on_a_loopback_default_or_the_embedded_broker() {
    // Inside a container, 127.0.0.1 is the container itself: every setting
    // whose default points there must be given, and so must KAFKA_BROKERS
    // (without it a binary starts an in-memory broker of its own).
    let compose = compose();
    for deployable in &DEPLOYABLES {
        let set = environment(service(&compose, deployable.service));
        let command = (deployable.command)();
        for argument in command.get_arguments() {
            let Some(name) = argument.get_env().map(|name| name.to_string_lossy().into_owned()) else {
                continue;
            };
            let loopback_default = argument.get_default_values().iter().any(|value| {
                let value = value.to_string_lossy();
                value.contains("127.0.0.1") || value.contains("localhost") || value.contains("::1")
            });
            if loopback_default || name == "KAFKA_BROKERS" {
                assert!(
                    set.contains_key(&name),
                    "{} does not set {name}, whose default only works outside a container",
                    deployable.service
                );
            }
        }
    }
}

#[test]
fn each_service_listens_on_its_documented_port_published_on_loopback_only() {
    let compose = compose();
    for deployable in &DEPLOYABLES {
        let command = (deployable.command)();
        let default_port: u16 = command
            .get_arguments()
            .find(|argument| argument.get_id() == "port")
            .and_then(|argument| argument.get_default_values().first())
            .map(|value| value.to_string_lossy().parse().expect("a port number"))
            .unwrap_or_else(|| panic!("{}'s Config has no default --port", deployable.service));
        assert_eq!(default_port, deployable.documented_port, "{}'s default --port is not the documented one", deployable.service);

        let service = service(&compose, deployable.service);
        let set = environment(service);
        assert_eq!(set.get("HOST").map(String::as_str), Some("0.0.0.0"), "{} must listen on every interface", deployable.service);
        let port: u16 = set
            .get("PORT")
            .unwrap_or_else(|| panic!("{} sets no PORT", deployable.service))
            .parse()
            .unwrap_or_else(|_| panic!("{}'s PORT is not a port number", deployable.service));
        assert_eq!(port, deployable.documented_port, "{} does not listen on its documented port", deployable.service);

        let published = published_ports(service);
        assert_eq!(
            published,
            vec![Published { host_ip: "127.0.0.1".into(), host_port: port, container_port: port }],
            "{} must publish its PORT, on the same port of the host's loopback",
            deployable.service
        );

        let probe = healthcheck_command(service).join(" ");
        assert!(
            probe.contains(&format!("http://127.0.0.1:{port}/readyz")),
            "{}'s healthcheck does not ask its own /readyz on port {port}: {probe}",
            deployable.service
        );
    }
}

#[test]
fn every_published_port_is_bound_to_loopback() {
    let compose = compose();
    for (name, service) in services(&compose) {
        for published in published_ports(service) {
            assert_eq!(published.host_ip, "127.0.0.1", "{} publishes port {} beyond loopback", text(name), published.host_port);
        }
    }
}

#[test]
fn each_service_uses_its_own_database_on_the_postgres_service() {
    let compose = compose();
    let postgres = environment(service(&compose, "postgres"));
    let user = postgres.get("POSTGRES_USER").map_or("postgres", String::as_str);
    let password = interpolate(postgres.get("POSTGRES_PASSWORD").expect("the postgres service needs POSTGRES_PASSWORD"));
    let mut databases = BTreeSet::new();
    for deployable in &DEPLOYABLES {
        let set = environment(service(&compose, deployable.service));
        let url = PostgresUrl::parse(&interpolate(
            set.get("DATABASE_URL").unwrap_or_else(|| panic!("{} sets no DATABASE_URL", deployable.service)),
        ));
        assert_eq!(url.host, "postgres", "{}'s DATABASE_URL is not the postgres service", deployable.service);
        assert_eq!(url.port, 5432, "{}'s DATABASE_URL has the wrong port", deployable.service);
        assert_eq!(url.database, deployable.database, "{}'s DATABASE_URL names the wrong database", deployable.service);
        assert_eq!(url.user, user, "{}'s DATABASE_URL logs in as another user", deployable.service);
        assert_eq!(
            url.password, password,
            "{}'s DATABASE_URL has another password than the postgres service",
            deployable.service
        );
        assert!(databases.insert(url.database), "two services share a database");

        // The binary's own default names the same database.
        let command = (deployable.command)();
        let default = command
            .get_arguments()
            .find(|argument| argument.get_env() == Some(OsStr::new("DATABASE_URL")))
            .and_then(|argument| argument.get_default_values().first())
            .map(|value| PostgresUrl::parse(&value.to_string_lossy()))
            .unwrap_or_else(|| panic!("{}'s Config has no default DATABASE_URL", deployable.service));
        assert_eq!(default.database, deployable.database, "{}'s default database is not the documented one", deployable.service);
    }
}

#[test]
fn every_service_reaches_kafka_through_the_brokers_advertised_listener() {
    let compose = compose();
    let kafka = environment(service(&compose, "kafka"));
    let protocols = listener_map(kafka.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").expect("a listener protocol map"));
    let advertised: Vec<(String, String)> = listeners(kafka.get("KAFKA_ADVERTISED_LISTENERS").expect("advertised listeners"));
    let bound: Vec<(String, String)> = listeners(kafka.get("KAFKA_LISTENERS").expect("listeners"));
    for deployable in &DEPLOYABLES {
        let set = environment(service(&compose, deployable.service));
        let brokers = set.get("KAFKA_BROKERS").unwrap_or_else(|| panic!("{} sets no KAFKA_BROKERS", deployable.service));
        for broker in brokers.split(',') {
            let (host, port) = broker.rsplit_once(':').unwrap_or_else(|| panic!("{broker} is not host:port"));
            assert_eq!(host, "kafka", "{}'s KAFKA_BROKERS is not the kafka service", deployable.service);
            let (listener, _) = advertised.iter().find(|(_, address)| address == broker).unwrap_or_else(|| {
                panic!("{} uses {broker}, which kafka does not advertise ({advertised:?})", deployable.service)
            });
            assert_eq!(protocols.get(listener).map(String::as_str), Some("PLAINTEXT"), "the services speak plaintext Kafka");
            assert!(
                bound.iter().any(|(name, address)| name == listener && address.ends_with(&format!(":{port}"))),
                "kafka does not listen on {listener} port {port} ({bound:?})"
            );
        }
    }
}

#[test]
fn the_services_call_each_other_by_compose_service_name_and_port() {
    let compose = compose();
    // (caller, variable, callee)
    let calls = [
        ("post-service", "AUTH_JWKS_URL", "auth-service"),
        ("gateway", "AUTH_JWKS_URL", "auth-service"),
        ("gateway", "AUTH_URL", "auth-service"),
        ("gateway", "POST_URL", "post-service"),
    ];
    for (caller, variable, callee) in calls {
        let deployable = DEPLOYABLES.iter().find(|deployable| deployable.service == caller).expect("a deployable");
        let url = environment(service(&compose, caller))
            .get(variable)
            .cloned()
            .unwrap_or_else(|| panic!("{caller} does not set {variable}"));
        let (host, port, path) = http_url(&url);
        assert_eq!(host, callee, "{caller}'s {variable} is not the {callee} service");
        let callee_port: u16 = environment(service(&compose, callee))["PORT"].parse().expect("a port number");
        assert_eq!(port, callee_port, "{caller}'s {variable} is not {callee}'s PORT");

        // The same path as the binary's default, only another host.
        let command = (deployable.command)();
        let default = command
            .get_arguments()
            .find(|argument| argument.get_env() == Some(OsStr::new(variable)))
            .and_then(|argument| argument.get_default_values().first())
            .map(|value| value.to_string_lossy().into_owned())
            .unwrap_or_else(|| panic!("{caller}'s Config has no default {variable}"));
        assert_eq!(path, http_url(&default).2, "{caller}'s {variable} has another path than its default {default}");
    }
}

#[test]
fn kafka_runs_in_kraft_mode_without_zookeeper() {
    let compose = compose();
    let kafka = service(&compose, "kafka");
    let image = text(&kafka["image"]);
    let tag =
        image.strip_prefix("apache/kafka:").unwrap_or_else(|| panic!("kafka is not the official apache/kafka image: {image}"));
    let version: Vec<u32> = tag.split('.').map(|part| part.parse().unwrap_or_else(|_| panic!("unpinned tag {tag}"))).collect();
    assert!(version.len() == 3 && (version[..2] == [3, 9] || version[0] >= 4), "pin apache/kafka to 3.9.x or 4.x, not {tag}");

    let set = environment(kafka);
    let roles: BTreeSet<&str> = set["KAFKA_PROCESS_ROLES"].split(',').map(str::trim).collect();
    assert_eq!(roles, BTreeSet::from(["broker", "controller"]), "one node that is broker and controller");
    let node = &set["KAFKA_NODE_ID"];
    let controller_listener = &set["KAFKA_CONTROLLER_LISTENER_NAMES"];
    let (_, controller_address) = listeners(&set["KAFKA_LISTENERS"])
        .into_iter()
        .find(|(name, _)| name == controller_listener)
        .expect("a controller listener");
    let controller_port = controller_address.rsplit_once(':').expect("host:port").1.to_owned();
    assert_eq!(set["KAFKA_CONTROLLER_QUORUM_VOTERS"], format!("{node}@kafka:{controller_port}"), "the node votes for itself");
    for replicated in ["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] {
        assert_eq!(set.get(replicated).map(String::as_str), Some("1"), "{replicated} must be 1 on a single node");
    }

    let everything = serde_yaml::to_string(&compose).expect("YAML").to_lowercase();
    assert!(!everything.contains("zookeeper"), "docker-compose.yml mentions ZooKeeper");
}

#[test]
fn every_dependency_is_an_existing_service_with_a_healthcheck_that_is_awaited() {
    let compose = compose();
    let services = services(&compose);
    for (name, service) in services {
        let name = text(name);
        let Some(depends_on) = service.get("depends_on") else {
            continue;
        };
        let depends_on = depends_on
            .as_mapping()
            .unwrap_or_else(|| panic!("{name}'s depends_on must be a map, to wait for each dependency to be healthy"));
        for (dependency, condition) in depends_on {
            let dependency = text(dependency);
            assert_eq!(text(&condition["condition"]), "service_healthy", "{name} must wait for {dependency} to be healthy");
            let target = services
                .get(dependency.as_str())
                .unwrap_or_else(|| panic!("{name} depends on {dependency}, which is not a service"));
            assert!(!healthcheck_command(target).is_empty(), "{name} waits for {dependency}, which has no healthcheck");
        }
    }
    for deployable in &DEPLOYABLES {
        let depends_on = &service(&compose, deployable.service)["depends_on"];
        for infrastructure in ["postgres", "kafka"] {
            assert!(depends_on.get(infrastructure).is_some(), "{} must wait for {infrastructure}", deployable.service);
        }
    }
}

#[test]
fn each_service_runs_the_binary_its_crate_declares() {
    let compose = compose();
    for deployable in &DEPLOYABLES {
        let service = service(&compose, deployable.service);
        let command = match &service["command"] {
            Value::Sequence(words) => words.iter().map(text).collect::<Vec<_>>(),
            Value::String(line) => line.split_whitespace().map(str::to_owned).collect(),
            other => panic!("{}'s command is missing or odd: {other:?}", deployable.service),
        };
        let manifest = Manifest::read(deployable.crate_dir);
        assert_eq!(manifest.binaries.len(), 1, "{} declares one binary", manifest.package);
        assert_eq!(
            command.first(),
            manifest.binaries.first(),
            "{} runs another binary than its crate declares",
            deployable.service
        );
        let name = (deployable.command)().get_name().to_owned();
        assert_eq!(Some(&name), manifest.binaries.first(), "{}'s Config is named after another binary", deployable.service);
        assert!(
            service.get("build").is_some() && service.get("image").is_some(),
            "{} is built from the Dockerfile",
            deployable.service
        );
    }
    let images: BTreeSet<String> =
        DEPLOYABLES.iter().map(|deployable| text(&service(&compose, deployable.service)["image"])).collect();
    assert_eq!(images.len(), 1, "the three services share one image: {images:?}");
}

#[test]
fn auth_service_trusts_only_the_gateway_to_name_the_client() {
    let compose = compose();
    let auth = DEPLOYABLES.iter().find(|deployable| deployable.service == "auth-service").expect("auth-service");
    let arguments = flags_from_environment(auth, &environment(service(&compose, "auth-service")));
    let config = agora_auth_service::Config::try_parse_from(&arguments).expect("auth-service's configuration");

    let gateway_networks = &service(&compose, "gateway")["networks"];
    let (network, settings) = gateway_networks
        .as_mapping()
        .and_then(|networks| networks.iter().next())
        .expect("the gateway has a network with a fixed address");
    let gateway: Ipv4Addr = text(&settings["ipv4_address"]).parse().expect("the gateway's ipv4_address");
    assert_eq!(config.trusted_proxies, vec![IpAddr::V4(gateway)], "TRUSTED_PROXIES must be the gateway's address, and only it");

    let ipam = &compose["networks"][text(network).as_str()]["ipam"]["config"][0];
    let subnet = Cidr::parse(&text(&ipam["subnet"]));
    assert!(subnet.contains(gateway), "the gateway's address is outside its network's subnet");
    let handed_out = Cidr::parse(&text(&ipam["ip_range"]));
    assert!(!handed_out.contains(gateway), "Docker may hand the gateway's address to another container");
    let network_gateway: Ipv4Addr = text(&ipam["gateway"]).parse().expect("the network's gateway address");
    assert_ne!(network_gateway, gateway, "host connections come from the network's gateway address");
}

#[test]
fn auth_service_keeps_its_signing_key_on_a_named_volume() {
    let compose = compose();
    let auth = service(&compose, "auth-service");
    let key = PathBuf::from(&environment(auth)["AUTH_SIGNING_KEY_FILE"]);
    assert!(key.is_absolute(), "AUTH_SIGNING_KEY_FILE must not depend on the working directory");
    let declared = compose["volumes"].as_mapping().expect("top-level volumes");
    let mounted = auth["volumes"]
        .as_sequence()
        .expect("auth-service has volumes")
        .iter()
        .map(|volume| {
            let volume = text(volume);
            let mut parts = volume.split(':');
            (parts.next().unwrap_or_default().to_owned(), PathBuf::from(parts.next().unwrap_or_default()))
        })
        .find(|(_, target)| key.starts_with(target))
        .unwrap_or_else(|| panic!("{} is on no volume: a new container would sign with a new key", key.display()));
    assert!(declared.contains_key(mounted.0.as_str()), "{} is not a named volume", mounted.0);
}

#[test]
fn every_service_restarts_unless_stopped_and_the_applications_log_json() {
    let compose = compose();
    for (name, service) in services(&compose) {
        assert_eq!(text(&service["restart"]), "unless-stopped", "{}", text(name));
    }
    for deployable in &DEPLOYABLES {
        let set = environment(service(&compose, deployable.service));
        assert_eq!(set.get("LOG_FORMAT").map(String::as_str), Some("json"), "{}", deployable.service);
        assert!(set.get("RUST_LOG").is_some_and(|filter| !filter.is_empty()), "{} sets no RUST_LOG", deployable.service);
    }
}

// ---------------------------------------------------------------------------
// Dockerfile

#[test]
fn the_runtime_image_holds_the_binaries_the_cargo_manifests_declare() {
    let stages = dockerfile();
    let runtime = stages.last().expect("a stage");
    let mut copied = BTreeSet::new();
    for copy in runtime.instructions.iter().filter(|instruction| instruction.keyword == "COPY") {
        let words = copy.words();
        let Some(from) = words.iter().find_map(|word| word.strip_prefix("--from=")) else {
            continue;
        };
        assert!(stages.iter().any(|stage| stage.name.as_deref() == Some(from)), "COPY --from={from} names no stage");
        let paths: Vec<&String> = words.iter().filter(|word| !word.starts_with("--")).collect();
        let (destination, sources) = paths.split_last().expect("COPY sources and destination");
        if destination.trim_end_matches('/') == "/usr/local/bin" {
            copied.extend(sources.iter().map(|source| source.rsplit('/').next().unwrap_or_default().to_owned()));
        }
    }
    let build = stages
        .iter()
        .find(|stage| stage.instructions.iter().any(|instruction| instruction.arguments.contains("cargo build")))
        .expect("a stage that runs cargo build");
    let cargo = build.instructions.iter().find(|instruction| instruction.arguments.contains("cargo build")).expect("cargo build");
    let cargo_words = cargo.words();
    for flag in ["--release", "--locked"] {
        assert!(cargo_words.iter().any(|word| word == flag), "cargo build without {flag}");
    }
    for deployable in &DEPLOYABLES {
        let manifest = Manifest::read(deployable.crate_dir);
        assert!(
            cargo_words.windows(2).any(|pair| pair[0] == "-p" && pair[1] == manifest.package),
            "cargo build does not build {}",
            manifest.package
        );
        for binary in &manifest.binaries {
            assert!(
                copied.contains(binary),
                "the runtime stage does not copy {binary} into /usr/local/bin (it copies {copied:?})"
            );
            assert!(
                cargo.arguments.contains(&format!("target/release/{binary}")),
                "the build stage does not take {binary} from target/release"
            );
        }
    }
}

#[test]
fn the_images_are_the_ones_asked_for_and_run_unprivileged_on_every_interface() {
    let stages = dockerfile();
    let runtime = stages.last().expect("a stage");
    assert_eq!(runtime.image, "debian:bookworm-slim");
    let build = stages
        .iter()
        .find(|stage| stage.instructions.iter().any(|instruction| instruction.arguments.contains("cargo build")))
        .expect("a build stage");
    assert!(
        build.image.starts_with("rust:") && build.image.ends_with("-bookworm"),
        "build on Debian bookworm like the runtime: {}",
        build.image
    );

    let user = runtime.instructions.iter().rev().find(|instruction| instruction.keyword == "USER").expect("a USER");
    let account = user.arguments.split(':').next().unwrap_or_default();
    assert!(!["root", "0", ""].contains(&account), "the runtime stage runs as root");

    let environment: BTreeMap<String, String> = runtime
        .instructions
        .iter()
        .filter(|instruction| instruction.keyword == "ENV")
        .flat_map(|instruction| instruction.words())
        .filter_map(|word| word.split_once('=').map(|(name, value)| (name.to_owned(), value.to_owned())))
        .collect();
    assert_eq!(environment.get("HOST").map(String::as_str), Some("0.0.0.0"));
    for deployable in &DEPLOYABLES {
        let read = variables_read(deployable);
        for name in environment.keys() {
            assert!(read.contains(name.as_str()), "the image sets {name}, which {} does not read", deployable.service);
        }
    }

    let installs = runtime
        .instructions
        .iter()
        .filter(|instruction| instruction.keyword == "RUN")
        .map(|instruction| instruction.arguments.clone())
        .collect::<Vec<_>>()
        .join(" ");
    for package in ["ca-certificates", "curl"] {
        assert!(installs.contains(package), "the runtime stage does not install {package} (the healthchecks use curl)");
    }
}

#[test]
fn the_docker_build_context_leaves_out_build_output_and_local_secrets() {
    let ignored: BTreeSet<String> = std::fs::read_to_string(workspace().join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.trim_end_matches('/').to_owned())
        .collect();
    for entry in ["target", "node_modules", ".git", ".agora"] {
        assert!(ignored.contains(entry), ".dockerignore does not leave out {entry}");
    }
}

// ---------------------------------------------------------------------------
// Reading the files

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("ops sits in the workspace").to_path_buf()
}

/// docker-compose.yml with its YAML merge keys (`<<: *anchor`) applied, as
/// Compose applies them.
fn compose() -> Value {
    let path = workspace().join("docker-compose.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let mut compose: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    compose.apply_merge().expect("docker-compose.yml's merge keys");
    compose
}

fn services(compose: &Value) -> &serde_yaml::Mapping {
    compose["services"].as_mapping().expect("docker-compose.yml has services")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    services(compose).get(name).unwrap_or_else(|| panic!("docker-compose.yml has no {name} service"))
}

/// A scalar as Compose reads it into an environment value.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A service's `environment`, in either of Compose's two forms.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(map) => map.iter().map(|(name, value)| (text(name), text(value))).collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|entry| {
                let entry = text(entry);
                let (name, value) = entry.split_once('=').unwrap_or((&entry, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("odd environment: {other:?}"),
    }
}

/// Compose's `${NAME:-default}` interpolation, with every variable unset.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|end| start + end).unwrap_or_else(|| panic!("unclosed ${{ in {value}"));
        let expression = &rest[start + 2..end];
        let (_, default) = expression.split_once(":-").unwrap_or_else(|| panic!("give ${{{expression}}} a default"));
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every variable a deployable reads: its `Config`'s (clap `env`), and the
/// process-level ones.
fn variables_read(deployable: &Deployable) -> BTreeSet<String> {
    (deployable.command)()
        .get_arguments()
        .filter_map(|argument| argument.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .chain(PROCESS_VARIABLES.iter().map(|name| (*name).to_owned()))
        .collect()
}

/// The command line that says what `environment` says, so that clap checks
/// every value with the parser the binary uses for its variable (flags,
/// unlike the process environment, are not shared between tests running at
/// once). This checks the text interface itself; code that runs a service
/// sets its `Config`'s typed fields instead.
fn flags_from_environment(deployable: &Deployable, environment: &BTreeMap<String, String>) -> Vec<String> {
    let command = (deployable.command)();
    let mut arguments = vec![command.get_name().to_owned()];
    for (name, value) in environment {
        if PROCESS_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let argument = command
            .get_arguments()
            .find(|argument| argument.get_env() == Some(OsStr::new(name)))
            .unwrap_or_else(|| panic!("{} does not read {name}", deployable.service));
        let long = argument.get_long().unwrap_or_else(|| panic!("{name} has no --flag"));
        arguments.push(format!("--{long}={}", interpolate(value)));
    }
    arguments
}

fn healthcheck_command(service: &Value) -> Vec<String> {
    let healthcheck = &service["healthcheck"];
    if healthcheck["disable"].as_bool() == Some(true) {
        return Vec::new();
    }
    match &healthcheck["test"] {
        Value::Sequence(words) if words.first().map(text).as_deref() != Some("NONE") => words.iter().map(text).collect(),
        Value::String(line) => vec![line.clone()],
        _ => Vec::new(),
    }
}

#[derive(Debug, PartialEq)]
struct Published {
    host_ip: String,
    host_port: u16,
    container_port: u16,
}

/// A service's `ports`, in the short (`[IP:]HOST:CONTAINER`) or long syntax.
fn published_ports(service: &Value) -> Vec<Published> {
    let Some(ports) = service.get("ports") else {
        return Vec::new();
    };
    ports
        .as_sequence()
        .expect("ports is a list")
        .iter()
        .map(|port| match port {
            Value::Mapping(_) => Published {
                host_ip: port.get("host_ip").map(text).unwrap_or_default(),
                host_port: text(&port["published"]).parse().expect("a published port"),
                container_port: text(&port["target"]).parse().expect("a target port"),
            },
            short => {
                let short = text(short);
                let parts: Vec<&str> = short.split(':').collect();
                let (host_ip, host_port, container_port) = match parts.as_slice() {
                    [ip, host, container] => (ip.to_string(), host, container),
                    [host, container] => (String::new(), host, container),
                    _ => panic!("give {short} as IP:HOST:CONTAINER"),
                };
                Published {
                    host_ip,
                    host_port: host_port.parse().expect("a host port"),
                    container_port: container_port.parse().expect("a container port"),
                }
            }
        })
        .collect()
}

/// `NAME://host:port,…` as (NAME, host:port) pairs.
fn listeners(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .map(|listener| {
            let (name, address) =
                listener.trim().split_once("://").unwrap_or_else(|| panic!("{listener} is not NAME://host:port"));
            (name.to_owned(), address.to_owned())
        })
        .collect()
}

/// `NAME:PROTOCOL,…`
fn listener_map(value: &str) -> BTreeMap<String, String> {
    value
        .split(',')
        .map(|pair| {
            let (name, protocol) = pair.trim().split_once(':').unwrap_or_else(|| panic!("{pair} is not NAME:PROTOCOL"));
            (name.to_owned(), protocol.to_owned())
        })
        .collect()
}

/// `http://host:port/path` as its parts.
fn http_url(url: &str) -> (String, u16, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("{url} is not http://"));
    let (authority, path) =
        rest.split_once('/').map_or((rest, String::from("/")), |(authority, path)| (authority, format!("/{path}")));
    let (host, port) = authority.rsplit_once(':').unwrap_or_else(|| panic!("{url} names no port"));
    (host.to_owned(), port.parse().unwrap_or_else(|_| panic!("{url} has a bad port")), path)
}

struct PostgresUrl {
    user: String,
    password: String,
    host: String,
    port: u16,
    database: String,
}

impl PostgresUrl {
    fn parse(url: &str) -> Self {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .unwrap_or_else(|| panic!("{url} is not a postgres:// URL"));
        let (credentials, location) = rest.rsplit_once('@').unwrap_or(("", rest));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (authority, database) = location.split_once('/').unwrap_or_else(|| panic!("{url} names no database"));
        let database = database.split('?').next().unwrap_or_default();
        let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "5432"));
        PostgresUrl {
            user: user.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port: port.parse().unwrap_or_else(|_| panic!("{url} has a bad port")),
            database: database.to_owned(),
        }
    }
}

struct Cidr {
    network: u32,
    mask: u32,
}

impl Cidr {
    fn parse(cidr: &str) -> Self {
        let (address, length) = cidr.split_once('/').unwrap_or_else(|| panic!("{cidr} is not address/length"));
        let address: Ipv4Addr = address.parse().unwrap_or_else(|_| panic!("{cidr} has a bad address"));
        let length: u32 = length.parse().unwrap_or_else(|_| panic!("{cidr} has a bad length"));
        let mask = if length == 0 { 0 } else { u32::MAX << (32 - length) };
        Cidr { network: u32::from(address) & mask, mask }
    }

    fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask == self.network
    }
}

/// A crate's package name and binaries, from its Cargo.toml.
struct Manifest {
    package: String,
    binaries: Vec<String>,
}

impl Manifest {
    fn read(crate_dir: &str) -> Self {
        let directory = workspace().join(crate_dir);
        let text = std::fs::read_to_string(directory.join("Cargo.toml"))
            .unwrap_or_else(|error| panic!("cannot read {crate_dir}/Cargo.toml: {error}"));
        let mut section = String::new();
        let mut package = None;
        let mut binaries = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.trim() != "name" {
                continue;
            }
            let value = value.trim().trim_matches('"').to_owned();
            match section.as_str() {
                "[package]" => package = Some(value),
                "[[bin]]" => binaries.push(value),
                _ => {}
            }
        }
        let package = package.unwrap_or_else(|| panic!("{crate_dir}/Cargo.toml names no package"));
        if binaries.is_empty() && directory.join("src/main.rs").exists() {
            binaries.push(package.clone());
        }
        Manifest { package, binaries }
    }
}

struct Instruction {
    keyword: String,
    arguments: String,
}

impl Instruction {
    /// The arguments as words, in the shell or the JSON (exec) form.
    fn words(&self) -> Vec<String> {
        if self.arguments.starts_with('[') {
            serde_yaml::from_str(&self.arguments).unwrap_or_else(|error| panic!("bad JSON form {}: {error}", self.arguments))
        } else {
            self.arguments.split_whitespace().map(str::to_owned).collect()
        }
    }
}

struct Stage {
    image: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

/// The Dockerfile's stages, with continuation lines joined and comments
/// (and parser directives) dropped.
fn dockerfile() -> Vec<Stage> {
    let text = std::fs::read_to_string(workspace().join("Dockerfile")).expect("a Dockerfile at the workspace root");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(continued) => {
                current.push_str(continued);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "the Dockerfile ends inside a continued line");

    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, arguments) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_uppercase();
        let arguments = arguments.trim().to_owned();
        if keyword == "FROM" {
            let words: Vec<&str> = arguments.split_whitespace().filter(|word| !word.starts_with("--")).collect();
            let name = match words.as_slice() {
                [_, alias, name] if alias.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                [_] => None,
                _ => panic!("odd FROM {arguments}"),
            };
            stages.push(Stage { image: words[0].to_owned(), name, instructions: Vec::new() });
        } else {
            stages.last_mut().expect("FROM first").instructions.push(Instruction { keyword, arguments });
        }
    }
    stages
}
