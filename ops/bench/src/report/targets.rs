//! The targets of issue 12 ("read-model execution at the speed of its
//! SQL"), each with what this run measured: the read model executing every
//! request (no response cache) against the SQL ceiling and Hive Router,
//! logged-in reads, reads while commands run, and the gateway's memory.

use serde::{Deserialize, Serialize};

use super::{rps, Results};
use crate::throughput::Query;

/// One target: what was measured against it, and whether it was met
/// (`None`: not measured in this run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    pub name: String,
    pub measured: Option<f64>,
    /// "×" for a ratio, "MiB" for memory.
    pub unit: String,
    /// The target as text, e.g. "≥ 2×".
    pub target: String,
    pub met: Option<bool>,
}

/// The gateway's memory target: peak RSS under load.
const MEMORY_LIMIT_MIB: f64 = 150.0;

/// The gateway's own rows (its strategies and the ways it is called), whose
/// peak RSS is the gateway's.
fn is_gateway_row(key: &str) -> bool {
    key.starts_with("read-model") || key == "composition"
}

pub fn targets(results: &Results) -> Vec<TargetCheck> {
    let s = &results.throughput.series;
    let c = results.headline_concurrency;
    let ratio = |a: &str, b: &str, query: Query| Some(rps(s, a, query, c)? / rps(s, b, query, c)?);
    let mixed = |key: &str, rate: f64| {
        results
            .throughput
            .mixed
            .iter()
            .find(|p| p.key == key && p.target_writes_per_second == rate)
            .map(|p| p.reads.requests_per_second)
            .filter(|v| *v > 0.0)
    };
    let mixed_ratio = |key: &str, rate: f64| Some(mixed(key, rate)? / mixed("hive-router", rate)?);
    let at_least = |name: &str, measured: Option<f64>, min: f64| TargetCheck {
        name: name.to_owned(),
        measured,
        unit: "×".into(),
        target: format!("≥ {min}×"),
        met: measured.map(|v| v >= min),
    };
    let q = Query::PostsWithAuthors;
    let mut out = vec![
        at_least(
            "posts with authors, no response cache: read-model ÷ SQL ceiling",
            ratio("read-model-no-cache", "sql-ceiling", q),
            0.7,
        ),
        at_least(
            "posts with authors, no response cache: read-model ÷ Hive Router",
            ratio("read-model-no-cache", "hive-router", q),
            2.0,
        ),
        at_least(
            "logged in (a user's token on every request): read-model ÷ Hive Router",
            ratio("read-model-logged-in", "hive-router-logged-in", q),
            5.0,
        ),
        at_least(
            "deep, no response cache: read-model ÷ Hive Router",
            ratio("read-model-no-cache", "hive-router", Query::Deep),
            1.0,
        ),
        at_least("mixed, 50 writes/s: read-model ÷ Hive Router", mixed_ratio("read-model", 50.0), 10.0),
        at_least("mixed, 500 writes/s: read-model ÷ Hive Router", mixed_ratio("read-model", 500.0), 6.0),
        at_least("mixed, 50 writes/s: composition ÷ Hive Router", mixed_ratio("composition", 50.0), 1.0),
        at_least("mixed, 500 writes/s: composition ÷ Hive Router", mixed_ratio("composition", 500.0), 1.0),
    ];
    let peaks = s
        .iter()
        .filter(|series| is_gateway_row(&series.key))
        .flat_map(|series| series.points.iter().filter_map(|p| p.peak_rss_mib))
        .chain(results.throughput.mixed.iter().filter_map(|p| p.gateway_peak_rss_mib));
    let peak = peaks.reduce(f64::max);
    out.push(TargetCheck {
        name: "gateway peak RSS under load (every gateway row and the mixed workload)".into(),
        measured: peak,
        unit: "MiB".into(),
        target: format!("≤ {MEMORY_LIMIT_MIB:.0} MiB"),
        met: peak.map(|v| v <= MEMORY_LIMIT_MIB),
    });
    out
}

#[cfg(test)]
mod tests {
    use crate::report::fixture;

    #[test]
    fn a_target_without_its_rows_is_not_measured_rather_than_missed() {
        let mut results = fixture::results();
        results.throughput.series.retain(|s| s.key != "hive-router-logged-in");
        results.throughput.mixed.clear();
        let targets = super::targets(&results);
        let logged_in = targets.iter().find(|t| t.name.starts_with("logged in")).expect("the logged-in target");
        assert_eq!((logged_in.measured, logged_in.met), (None, None));
        assert!(targets.iter().filter(|t| t.name.starts_with("mixed")).all(|t| t.met.is_none()));
        let memory = targets.last().expect("the memory target");
        assert_eq!(memory.met, Some(true), "the fixture's gateway stays under 150 MiB");
    }
}
