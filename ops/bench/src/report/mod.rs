//! The results: JSON as measured, Markdown for people, ratios against the
//! targets of issues 4 and 5, and the targets of issue 12 ([`targets`]).

mod markdown;
mod targets;

pub use markdown::markdown;
pub use targets::{targets, TargetCheck};

use serde::{Deserialize, Serialize};

use crate::dataset::LoadReport;
use crate::freshness::FreshnessReport;
use crate::rebuild::RebuildReport;
use crate::subscribers::SubscriberLevel;
use crate::throughput::{Outcome, Query, Series};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub load_average_at_start: String,
    pub load_average_at_end: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown CPU".to_owned(), |s| s.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            load_average_at_start: load_average(),
            load_average_at_end: String::new(),
        }
    }

    pub fn summary(&self) -> String {
        format!("{} cores, {:.0} GiB", self.cores, self.memory_gib)
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    pub name: String,
    pub value: Option<f64>,
    /// The target as text, e.g. "≥ 10×".
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    pub generated_at: String,
    pub git_commit: String,
    pub mode: String,
    pub command: String,
    pub machine: Machine,
    pub headline_concurrency: usize,
    pub seconds_per_point: f64,
    pub warmup_seconds: f64,
    pub dataset: Option<LoadReport>,
    pub throughput: Outcome,
    pub ratios: Vec<Ratio>,
    /// Issue 12's targets, each measured or not.
    #[serde(default)]
    pub targets: Vec<TargetCheck>,
    pub freshness: Option<FreshnessReport>,
    pub rebuild: Option<RebuildReport>,
    pub subscribers: Vec<SubscriberLevel>,
    pub notes: Vec<String>,
    pub total_seconds: f64,
}

pub fn find<'a>(series: &'a [Series], key: &str, query: Query) -> Option<&'a Series> {
    series.iter().find(|s| s.key == key && s.query == query)
}

pub fn rps(series: &[Series], key: &str, query: Query, concurrency: usize) -> Option<f64> {
    find(series, key, query)?.at(concurrency).map(|p| p.requests_per_second).filter(|v| *v > 0.0)
}

/// The ratios the issues name, at the headline concurrency.
pub fn ratios(results: &Results) -> Vec<Ratio> {
    let s = &results.throughput.series;
    let c = results.headline_concurrency;
    let q = Query::PostsWithAuthors;
    let ratio = |a: &str, b: &str, query: Query| Some(rps(s, a, query, c)? / rps(s, b, query, c)?);
    let mut out = Vec::new();
    let mut push = |name: String, value: Option<f64>, min: Option<f64>, strict: bool| {
        let target = min.map(|m| if strict { format!("> {m}×") } else { format!("≥ {m}×") });
        let met = match (value, min) {
            (Some(v), Some(m)) => Some(if strict { v > m } else { v >= m }),
            _ => None,
        };
        out.push(Ratio { name, value, target, met });
    };
    // The read-model strategy as shipped (response cache on) and its
    // execution alone (`Cache-Control: no-cache`), against the same targets.
    for (key, label) in [("read-model", "read-model"), ("read-model-no-cache", "read-model (no cache)")] {
        push(format!("{label} ÷ composition"), ratio(key, "composition", q), Some(10.0), false);
        push(format!("{label} ÷ Hive Router"), ratio(key, "hive-router", q), Some(3.0), false);
        push(format!("{label} ÷ Hive Gateway"), ratio(key, "hive-gateway", q), Some(10.0), false);
        push(format!("{label} ÷ Apollo Gateway"), ratio(key, "apollo-gateway", q), Some(30.0), false);
        push(format!("{label} ÷ SQL ceiling"), ratio(key, "sql-ceiling", q), Some(0.5), false);
        push(format!("{label} ÷ Hive Router (dedupe off)"), ratio(key, "hive-router-no-dedupe", q), None, false);
    }
    push("composition ÷ Hive Router".into(), ratio("composition", "hive-router", q), Some(0.8), false);
    push("composition ÷ Hive Router (dedupe off)".into(), ratio("composition", "hive-router-no-dedupe", q), None, false);
    push("composition ÷ Hive Gateway".into(), ratio("composition", "hive-gateway", q), Some(1.0), true);
    push("composition ÷ Apollo Gateway".into(), ratio("composition", "apollo-gateway", q), Some(1.0), true);
    let d = Query::Deep;
    push("deep: read-model ÷ composition".into(), ratio("read-model", "composition", d), None, false);
    push("deep: read-model ÷ Hive Router".into(), ratio("read-model", "hive-router", d), None, false);
    push("deep: read-model (no cache) ÷ composition".into(), ratio("read-model-no-cache", "composition", d), None, false);
    push("deep: read-model (no cache) ÷ Hive Router".into(), ratio("read-model-no-cache", "hive-router", d), None, false);
    push("deep: composition ÷ Hive Router".into(), ratio("composition", "hive-router", d), None, false);
    // The executors side by side, each executing every request.
    push(
        "no cache: default executor ÷ resolvers executor".into(),
        ratio("read-model-no-cache", "read-model-resolvers-no-cache", q),
        None,
        false,
    );
    push(
        "deep, no cache: default executor ÷ resolvers executor".into(),
        ratio("read-model-no-cache", "read-model-resolvers-no-cache", d),
        None,
        false,
    );
    out
}

/// The committed example results the report and the chart are checked
/// against (`ops/bench/fixtures`): rendering them must give the committed
/// output byte for byte; `UPDATE_FIXTURES=1` rewrites it after an intended
/// change.
#[cfg(test)]
pub mod fixture {
    use std::path::PathBuf;

    use super::Results;

    fn path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
    }

    pub fn results() -> Results {
        let json = std::fs::read_to_string(path("results.json")).expect("fixtures/results.json");
        serde_json::from_str(&json).expect("the fixture parses as results")
    }

    pub fn assert_unchanged(name: &str, actual: &str) {
        let path = path(name);
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&path, actual).expect("the fixture is written");
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
            panic!(
                "{} differs from the rendering (first different line: {:?}); run with UPDATE_FIXTURES=1 if the change is intended",
                path.display(),
                first.map(|line| line + 1)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture;

    #[test]
    fn the_report_of_the_fixture_is_unchanged() {
        let mut results = fixture::results();
        results.ratios = super::ratios(&results);
        results.targets = super::targets(&results);
        fixture::assert_unchanged("report.md", &super::markdown(&results));
    }
}
