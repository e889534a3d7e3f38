//! The PNG chart (plotters): throughput and p99 latency against concurrency
//! for every gateway on "posts with authors", and the subscriber figures.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::Results;
use crate::throughput::Query;

const FONT: &str = "sans-serif";

/// Registers a TrueType font found on the machine (plotters draws text with
/// ab_glyph, which needs one).
fn register_font() -> anyhow::Result<()> {
    let mut candidates = vec![
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".to_owned(),
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf".to_owned(),
    ];
    if let Ok(out) = std::process::Command::new("fc-match").args(["-f", "%{file}", "sans-serif"]).output() {
        candidates.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(anyhow!("no TrueType font found for the chart (install fonts-dejavu-core)"))
}

fn color(key: &str) -> RGBColor {
    match key {
        "read-model" => RGBColor(0x1f, 0x77, 0xb4),
        "read-model-no-cache" => RGBColor(0x8c, 0x56, 0x4b),
        "composition" => RGBColor(0xff, 0x7f, 0x0e),
        "hive-router" => RGBColor(0x2c, 0xa0, 0x2c),
        "hive-router-no-dedupe" => RGBColor(0x17, 0xbe, 0xcf),
        "hive-gateway" => RGBColor(0xd6, 0x27, 0x28),
        "apollo-gateway" => RGBColor(0x94, 0x67, 0xbd),
        "sql-ceiling" => RGBColor(0x7f, 0x7f, 0x7f),
        _ => RGBColor(0x8c, 0x56, 0x4b),
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.1, 10.0);
    }
    (lo / 2.0, hi * 2.0)
}

pub fn draw(results: &Results, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    draw_on(BitMapBackend::new(path, (1600, 1200)).into_drawing_area(), results)
}

fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, results: &Results) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let title = format!(
        "Agora benchmark: {} users, {} posts, {} ({})",
        results.dataset.as_ref().map_or(0, |d| d.users),
        results.dataset.as_ref().map_or(0, |d| d.posts),
        results.machine.summary(),
        results.mode
    );
    let root = root.titled(&title, (FONT, 26))?;
    let panels = root.split_evenly((2, 2));
    let series: Vec<_> = results.throughput.series.iter().filter(|s| s.query == Query::PostsWithAuthors).collect();
    let levels: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.concurrency as f64)).collect();
    let (xlo, xhi) = bounds(levels.iter().copied());

    // Throughput and p99 against concurrency.
    for (panel, (caption, metric, unit)) in panels
        .iter()
        .take(2)
        .zip([("posts with authors: throughput", 0, "requests/s"), ("posts with authors: p99 latency", 1, "p99 ms")])
    {
        let value = |p: &crate::load::Point| if metric == 0 { p.requests_per_second } else { p.p99_ms };
        let (ylo, yhi) = bounds(series.iter().flat_map(|s| s.points.iter().map(value)));
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((xlo.max(0.5)..xhi).log_scale(), (ylo..yhi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("concurrency (log)")
            .y_desc(format!("{unit} (log)"))
            .label_style((FONT, 15))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| if *y >= 10.0 { format!("{y:.0}") } else { format!("{y:.2}") })
            .draw()?;
        for s in &series {
            let c = color(&s.key);
            let points: Vec<(f64, f64)> =
                s.points.iter().map(|p| (p.concurrency as f64, value(p))).filter(|p| p.1 > 0.0).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(if metric == 0 { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperLeft })
            .draw()?;
    }

    // Subscribers: delivery latency and the gateway's memory; lines for one
    // shared document, crosses for a document per subscriber (worst case).
    let all_subs = &results.subscribers;
    let subs: Vec<_> = all_subs.iter().filter(|l| !l.distinct_operations).collect();
    let worst: Vec<_> = all_subs.iter().filter(|l| l.distinct_operations).collect();
    let xs: Vec<f64> = subs.iter().map(|l| l.subscribers as f64).collect();
    let (sxlo, sxhi) = if xs.is_empty() { (100.0, 20_000.0) } else { bounds(xs.iter().copied()) };
    {
        let (ylo, yhi) = bounds(all_subs.iter().flat_map(|l| [l.latency.p50_ms, l.latency.p99_ms, 250.0]));
        let mut chart = ChartBuilder::on(&panels[2])
            .caption("subscribers on one gateway: commit → delivery", (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((sxlo..sxhi).log_scale(), (ylo.max(0.1)..yhi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("WebSocket subscribers (log)")
            .y_desc("ms (log)")
            .label_style((FONT, 15))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| if *y >= 10.0 { format!("{y:.0}") } else { format!("{y:.1}") })
            .draw()?;
        for (label, pick, c) in [("p50", 0, RGBColor(0x1f, 0x77, 0xb4)), ("p99", 1, RGBColor(0xd6, 0x27, 0x28))] {
            let points: Vec<(f64, f64)> = subs
                .iter()
                .map(|l| (l.subscribers as f64, if pick == 0 { l.latency.p50_ms } else { l.latency.p99_ms }))
                .filter(|p| p.1 > 0.0)
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
            let crosses: Vec<(f64, f64)> = worst
                .iter()
                .map(|l| (l.subscribers as f64, if pick == 0 { l.latency.p50_ms } else { l.latency.p99_ms }))
                .filter(|p| p.1 > 0.0)
                .collect();
            if !crosses.is_empty() {
                chart
                    .draw_series(crosses.iter().map(|&p| Cross::new(p, 7, c.stroke_width(3))))?
                    .label(format!("{label}, a document per subscriber"))
                    .legend(move |(x, y)| Cross::new((x + 10, y), 6, c.stroke_width(3)));
            }
        }
        let target = RGBColor(0x7f, 0x7f, 0x7f);
        chart
            .draw_series(LineSeries::new(vec![(sxlo, 250.0), (sxhi, 250.0)], target.stroke_width(1)))?
            .label("target p99 250 ms")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], target.stroke_width(1)));
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    {
        let values = all_subs
            .iter()
            .flat_map(|l| [l.rss_connected_mib.unwrap_or(0.0), l.peak_rss_mib.unwrap_or(0.0), l.cpu_percent.unwrap_or(0.0)]);
        let yhi = values.fold(10.0f64, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(&panels[3])
            .caption("subscribers: gateway memory and CPU", (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((sxlo..sxhi).log_scale(), 0.0..yhi)?;
        chart
            .configure_mesh()
            .x_desc("WebSocket subscribers (log)")
            .y_desc("MiB  /  % of one core")
            .label_style((FONT, 15))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        for (label, pick, c) in [
            ("RSS with subscribers connected (MiB)", 0, RGBColor(0x1f, 0x77, 0xb4)),
            ("peak RSS while posts flow (MiB)", 1, RGBColor(0x2c, 0xa0, 0x2c)),
            ("CPU while posts flow (% of a core)", 2, RGBColor(0xff, 0x7f, 0x0e)),
        ] {
            let points: Vec<(f64, f64)> = subs
                .iter()
                .filter_map(|l| {
                    let v = match pick {
                        0 => l.rss_connected_mib,
                        1 => l.peak_rss_mib,
                        _ => l.cpu_percent,
                    }?;
                    Some((l.subscribers as f64, v))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    root.present().context("cannot write the chart")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use plotters::prelude::*;

    use crate::report::fixture;

    /// The chart of the fixture's results, drawn as SVG (the same drawing
    /// code as the PNG), is byte for byte the one committed.
    #[test]
    fn the_chart_of_the_fixture_is_unchanged() {
        super::register_font().expect("a font");
        let mut svg = String::new();
        super::draw_on(SVGBackend::with_string(&mut svg, (1600, 1200)).into_drawing_area(), &fixture::results())
            .expect("the chart draws");
        fixture::assert_unchanged("chart.svg", &svg);
    }
}
