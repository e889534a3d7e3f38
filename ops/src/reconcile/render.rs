//! The human-readable form of a [`Report`].

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Check, Difference, Report};

fn by_check(report: &Report) -> BTreeMap<Check, Vec<&Difference>> {
    let mut grouped: BTreeMap<Check, Vec<&Difference>> = BTreeMap::new();
    for difference in &report.differences {
        grouped.entry(difference.check).or_default().push(difference);
    }
    grouped
}

fn label(value: impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `no differences`, or `3 differences (posts 2, outbox 1)`.
pub fn summary(report: &Report) -> String {
    if report.is_clean() {
        return "no differences".to_owned();
    }
    let parts: Vec<String> = by_check(report).iter().map(|(check, found)| format!("{} {}", label(check), found.len())).collect();
    format!("{} differences ({})", report.differences.len(), parts.join(", "))
}

pub fn render(report: &Report, limit: usize) -> String {
    let counts = &report.counts;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "compared {} users, {} points accounts, {} posts, {} outbox rows, {} topic messages",
        counts.users, counts.points_accounts, counts.posts, counts.outbox_rows, counts.topic_messages
    );
    if counts.topics_skipped {
        let _ = writeln!(out, "topics: not read (no Kafka brokers given); outboxes not compared with them");
    }
    let _ = writeln!(
        out,
        "information: {} duplicated messages in topics (allowed), {} dead letters",
        counts.duplicated_in_topic, counts.dead_letters
    );
    if !counts.truncated_topics.is_empty() {
        let _ = writeln!(out, "information: the broker dropped the oldest messages of {}", counts.truncated_topics.join(", "));
    }
    for (check, found) in by_check(report) {
        let _ = writeln!(out, "{}: {} differences", label(check), found.len());
        for difference in found.iter().take(limit) {
            let _ = writeln!(out, "  {:<11} {}  {}", label(difference.kind), difference.id, difference.detail);
        }
        if found.len() > limit {
            let _ = writeln!(out, "  … and {} more (--json lists them all)", found.len() - limit);
        }
    }
    let _ = writeln!(out, "{}", summary(report));
    out
}
