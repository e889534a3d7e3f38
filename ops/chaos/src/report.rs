//! The results table (Markdown) and its notes.

use std::fmt::Write;
use std::time::Duration;

use crate::runner::{Options, Row};

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "not converged".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

pub fn markdown(rows: &[Row], options: &Options, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(out, "What the columns mean and how to run it: [`ops/chaos/README.md`](../README.md).\n");
    let _ = writeln!(
        out,
        "Written by `agora-chaos` on {} (commit {}). Load: {} workers × {:.1} commands/s (register, rename, createPost; \
         Idempotency-Key on each, retried with the same key on UNAVAILABLE, UPSTREAM_UNAVAILABLE, TIMEOUT, RATE_LIMITED and \
         transport errors, failing over between gateways, for up to {} s). Each scenario: {} s of load, the fault, {} s more \
         load, then a wait (at most {} s) for reconciliation to find no difference.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        git_commit(),
        options.load.workers,
        options.load.rate,
        options.command_deadline.as_secs(),
        options.warmup.as_secs(),
        options.cooldown.as_secs(),
        options.quiet_deadline.as_secs(),
    );
    let passed = rows.iter().filter(|row| row.passed()).count();
    let _ = writeln!(out, "**{passed} of {} scenarios passed** (0 lost, 0 applied twice, 0 missing from or duplicated in a subscriber's feed, no reconciliation difference, no command answered INTERNAL or failed although applied).\n", rows.len());
    let _ = writeln!(
        out,
        "| scenario | commands sent | acknowledged | not acknowledged | lost | applied twice | feed: missing | feed: duplicated | time to converge | reconciliation differences (new) | |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let failed: usize = row.effects.failed.values().sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} of {} | {} | {} | {} ({}) | {} |",
            row.scenario,
            row.effects.sent,
            row.effects.acknowledged,
            failed,
            row.effects.lost.len(),
            row.effects.twice.len(),
            row.feed.missing,
            row.feed.expected,
            row.feed.duplicated,
            seconds(row.converged),
            row.differences,
            row.new_differences,
            if row.passed() { "pass" } else { "**FAIL**" }
        );
    }
    let _ = writeln!(out, "\n## Notes per scenario\n");
    for row in rows {
        let _ = writeln!(out, "### {}\n", row.scenario);
        for error in &row.errors {
            let _ = writeln!(out, "- error: {error}");
        }
        if !row.effects.failed.is_empty() {
            let codes: Vec<String> = row.effects.failed.iter().map(|(code, n)| format!("{code} ×{n}")).collect();
            let _ = writeln!(
                out,
                "- not acknowledged: {} ({} of them applied all the same)",
                codes.join(", "),
                row.effects.failed_but_applied
            );
        }
        if !row.effects.stale.is_empty() {
            let kinds: Vec<String> = row.effects.stale.iter().map(|(kind, n)| format!("{kind} ×{n}")).collect();
            let _ = writeln!(out, "- acknowledged before the read model showed them (`consistent: false`): {}", kinds.join(", "));
        }
        if !row.effects.retried.is_empty() {
            let codes: Vec<String> = row.effects.retried.iter().map(|(code, n)| format!("{code} ×{n}")).collect();
            let _ = writeln!(out, "- retried by the client (first retried answer): {}", codes.join(", "));
        }
        for (what, list) in [("lost", &row.effects.lost), ("applied twice", &row.effects.twice)] {
            for item in list.iter().take(5) {
                let _ = writeln!(out, "- {what}: {item}");
            }
            if list.len() > 5 {
                let _ = writeln!(out, "- … and {} more {what}", list.len() - 5);
            }
        }
        for example in &row.feed.examples {
            let _ = writeln!(out, "- feed: {example}");
        }
        let _ =
            writeln!(out, "- subscriber sessions: {}; the scenario took {:.0} s", row.feed.sessions, row.elapsed.as_secs_f64());
        let _ = writeln!(out, "\n```\n{}```\n", row.reconciliation);
    }
    out
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
