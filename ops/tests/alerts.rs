//! The Prometheus alert rules in `ops/alerts/` name only metrics that the
//! code exports: a rule on a renamed or removed metric would never fire.

use std::path::{Path, PathBuf};

/// The workspace's Rust sources (crates' `src/` folders).
fn sources(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('.') && name != "target" && name != "node_modules" {
                pending.push(path);
            } else if name.ends_with(".rs") && path.components().any(|part| part.as_os_str() == "src") {
                found.push(path);
            }
        }
    }
    found
}

/// The metric names an expression uses (Agora's all start with `agora_`).
fn metrics_in(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("agora_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_an_alert_rule_names_is_exported_by_the_code() {
    let ops = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(ops.join("alerts/agora.rules.yml")).unwrap()).unwrap();
    let code: String = sources(ops.parent().unwrap()).iter().map(|path| std::fs::read_to_string(path).unwrap()).collect();
    let mut checked = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            let expression = rule["expr"].as_str().unwrap_or_else(|| panic!("{alert} has no expr"));
            for metric in metrics_in(expression) {
                // A histogram is exported as one name and scraped with suffixes.
                let base = ["_bucket", "_count", "_sum"].iter().find_map(|suffix| metric.strip_suffix(suffix));
                let exported =
                    [Some(metric.as_str()), base].into_iter().flatten().any(|name| code.contains(&format!("\"{name}\"")));
                assert!(exported, "alert {alert} names {metric}, which no code exports");
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "the rules name no metric");
}

#[test]
fn finds_the_metrics_an_expression_names() {
    assert_eq!(
        metrics_in("sum by (consumer) (increase(agora_a_total[5m])) > agora_b"),
        vec!["agora_a_total".to_owned(), "agora_b".to_owned()]
    );
}
