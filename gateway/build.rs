//! Brings in the browser assets that come from npm (the GraphiQL
//! playground's, and graphql-ws's browser client for the playground and the
//! demo app): the npm packages pinned by the workspace's `package-lock.json`
//! (installed with `npm ci` when missing or stale), copied into `OUT_DIR`
//! for `include_bytes!`, their versions exported as `AGORA_<PACKAGE>_VERSION`
//! so that asset URLs can be cached forever.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// (npm package, file inside it, name in OUT_DIR, version variable)
const ASSETS: [(&str, &str, &str, &str); 5] = [
    ("graphiql", "graphiql.min.js", "graphiql.min.js", "AGORA_GRAPHIQL_VERSION"),
    ("graphiql", "graphiql.min.css", "graphiql.min.css", "AGORA_GRAPHIQL_VERSION"),
    ("react", "umd/react.production.min.js", "react.production.min.js", "AGORA_REACT_VERSION"),
    ("react-dom", "umd/react-dom.production.min.js", "react-dom.production.min.js", "AGORA_REACT_DOM_VERSION"),
    ("graphql-ws", "umd/graphql-ws.min.js", "graphql-ws.min.js", "AGORA_GRAPHQL_WS_VERSION"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("the gateway sits inside the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let lock_path = root.join("package-lock.json");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    println!("cargo:rerun-if-changed={}", root.join("package.json").display());

    let lock = read_json(&lock_path);
    let packages = ["graphiql", "react", "react-dom", "graphql-ws"];
    let stale: Vec<&str> =
        packages.iter().copied().filter(|package| installed_version(&root, package) != locked_version(&lock, package)).collect();
    if !stale.is_empty() {
        println!("cargo:warning=installing the playground's npm packages ({} missing or stale): npm ci", stale.join(", "));
        npm_ci(&root);
    }

    for (package, file, out_name, version_variable) in ASSETS {
        let source = root.join("node_modules").join(package).join(file);
        println!("cargo:rerun-if-changed={}", source.display());
        fs::copy(&source, out_dir.join(out_name))
            .unwrap_or_else(|error| panic!("cannot copy {} into OUT_DIR: {error}", source.display()));
        let version = installed_version(&root, package)
            .unwrap_or_else(|| panic!("{package} is not installed in {} even after npm ci", root.join("node_modules").display()));
        println!("cargo:rustc-env={version_variable}={version}");
    }
}

fn npm_ci(root: &Path) {
    let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(root).status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`npm ci` in {} failed ({status}); run it by hand to see why", root.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "npm was not found: the gateway embeds the GraphiQL playground from npm packages. \
             Install Node.js 20+ with npm (e.g. `apt-get install nodejs npm`), or run `npm ci` in {}",
            root.display()
        ),
        Err(error) => panic!("cannot run npm: {error}"),
    }
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{} is not valid JSON: {error}", path.display()))
}

fn locked_version(lock: &Value, package: &str) -> Option<String> {
    lock["packages"][format!("node_modules/{package}")]["version"].as_str().map(str::to_owned)
}

fn installed_version(root: &Path, package: &str) -> Option<String> {
    let manifest = fs::read_to_string(root.join("node_modules").join(package).join("package.json")).ok()?;
    serde_json::from_str::<Value>(&manifest).ok()?["version"].as_str().map(str::to_owned)
}
