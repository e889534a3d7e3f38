//! The PNG chart (plotters): throughput and p99 latency against concurrency
//! for every gateway on "posts with authors", the reads of the mixed
//! workload against the write rate, and the subscriber figures.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::load::Point;
use crate::report::Results;
use crate::subscribers::SubscriberLevel;
use crate::throughput::{MixedPoint, Query, Series};

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
        "read-model-resolvers" => RGBColor(0xae, 0xc7, 0xe8),
        "read-model-resolvers-no-cache" => RGBColor(0xc4, 0x9c, 0x94),
        "read-model-logged-in" => RGBColor(0x39, 0x3b, 0x79),
        "read-model-persisted-get" => RGBColor(0xbc, 0xbd, 0x22),
        "hive-router-logged-in" => RGBColor(0x98, 0xdf, 0x8a),
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
    draw_on(BitMapBackend::new(path, SIZE).into_drawing_area(), results)
}

/// Three rows of two panels.
const SIZE: (u32, u32) = (1600, 1800);

type Panel<DB> = DrawingArea<DB, Shift>;
type LogLog = Cartesian2d<LogCoord<f64>, LogCoord<f64>>;

fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, results: &Results) -> anyhow::Result<()>
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
    let panels = root.split_evenly((3, 2));
    let series: Vec<&Series> = results.throughput.series.iter().filter(|s| s.query == Query::PostsWithAuthors).collect();
    throughput_panel(&panels[0], &series, Metric::Throughput)?;
    throughput_panel(&panels[1], &series, Metric::P99)?;
    mixed_panel(&panels[2], &results.throughput.mixed, Metric::Throughput)?;
    mixed_panel(&panels[3], &results.throughput.mixed, Metric::P99)?;
    let subscribers = Subscribers::of(&results.subscribers);
    subscriber_latency_panel(&panels[4], &subscribers)?;
    subscriber_resources_panel(&panels[5], &subscribers)?;
    root.present().context("cannot write the chart")?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    Throughput,
    P99,
}

impl Metric {
    fn of(self, point: &Point) -> f64 {
        match self {
            Metric::Throughput => point.requests_per_second,
            Metric::P99 => point.p99_ms,
        }
    }
}

/// A panel's axes: captioned, with room for the labels.
fn builder<'a, 'b, DB: DrawingBackend>(panel: &'a Panel<DB>, caption: &str) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(panel);
    builder.caption(caption, (FONT, 22)).margin(15).x_label_area_size(45).y_label_area_size(70);
    builder
}

/// A line through `points` with a dot on each, in the legend as `label`.
fn line<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    label: impl Into<String>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()?;
    Ok(())
}

/// Throughput or p99 against concurrency, one line per gateway.
fn throughput_panel<DB: DrawingBackend>(panel: &Panel<DB>, series: &[&Series], metric: Metric) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (caption, unit, position) = match metric {
        Metric::Throughput => ("posts with authors: throughput", "requests/s", SeriesLabelPosition::LowerRight),
        Metric::P99 => ("posts with authors: p99 latency", "p99 ms", SeriesLabelPosition::UpperLeft),
    };
    let (xlo, xhi) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.concurrency as f64)));
    let (ylo, yhi) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| metric.of(p))));
    let mut chart: ChartContext<'_, DB, LogLog> =
        builder(panel, caption).build_cartesian_2d((xlo.max(0.5)..xhi).log_scale(), (ylo..yhi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("concurrency (log)")
        .y_desc(format!("{unit} (log)"))
        .label_style((FONT, 15))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| if *y >= 10.0 { format!("{y:.0}") } else { format!("{y:.2}") })
        .draw()?;
    for s in series {
        let points = s.points.iter().map(|p| (p.concurrency as f64, metric.of(p))).filter(|p| p.1 > 0.0).collect();
        line(&mut chart, points, color(&s.key), s.label.clone())?;
    }
    legend(&mut chart, position)
}

/// The mixed workload's reads (throughput or p99) against the write rate,
/// one line per reader.
fn mixed_panel<DB: DrawingBackend>(panel: &Panel<DB>, points: &[MixedPoint], metric: Metric) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (caption, unit, position) = match metric {
        Metric::Throughput => ("reads while commands run: throughput", "requests/s", SeriesLabelPosition::LowerLeft),
        Metric::P99 => ("reads while commands run: p99 latency", "p99 ms", SeriesLabelPosition::UpperLeft),
    };
    let (xlo, xhi) = bounds(points.iter().map(|p| p.target_writes_per_second));
    let (ylo, yhi) = bounds(points.iter().map(|p| metric.of(&p.reads)));
    let mut chart: ChartContext<'_, DB, LogLog> =
        builder(panel, caption).build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("commands per second (log)")
        .y_desc(format!("{unit} (log)"))
        .label_style((FONT, 15))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| if *y >= 10.0 { format!("{y:.0}") } else { format!("{y:.2}") })
        .draw()?;
    // The readers in the order they were measured.
    let mut readers: Vec<(&str, &str)> = Vec::new();
    for p in points {
        if !readers.iter().any(|(key, _)| *key == p.key) {
            readers.push((p.key.as_str(), p.label.as_str()));
        }
    }
    for (key, label) in readers {
        let line_points = points
            .iter()
            .filter(|p| p.key == key)
            .map(|p| (p.target_writes_per_second, metric.of(&p.reads)))
            .filter(|p| p.1 > 0.0)
            .collect();
        line(&mut chart, line_points, color(key), label)?;
    }
    legend(&mut chart, position)
}

/// The subscriber levels: lines for one shared document, crosses for a
/// document per subscriber (the worst case).
struct Subscribers<'a> {
    all: &'a [SubscriberLevel],
    shared: Vec<&'a SubscriberLevel>,
    distinct: Vec<&'a SubscriberLevel>,
    x_range: (f64, f64),
}

impl<'a> Subscribers<'a> {
    fn of(all: &'a [SubscriberLevel]) -> Self {
        let shared: Vec<_> = all.iter().filter(|l| !l.distinct_operations).collect();
        let distinct = all.iter().filter(|l| l.distinct_operations).collect();
        let x_range = if shared.is_empty() { (100.0, 20_000.0) } else { bounds(shared.iter().map(|l| l.subscribers as f64)) };
        Subscribers { all, shared, distinct, x_range }
    }
}

/// Delivery latency (p50, p99) against the number of subscribers.
fn subscriber_latency_panel<DB: DrawingBackend>(panel: &Panel<DB>, subscribers: &Subscribers) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (sxlo, sxhi) = subscribers.x_range;
    let (ylo, yhi) = bounds(subscribers.all.iter().flat_map(|l| [l.latency.p50_ms, l.latency.p99_ms, 250.0]));
    let mut chart: ChartContext<'_, DB, LogLog> = builder(panel, "subscribers on one gateway: commit → delivery")
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
        let latency = |l: &&SubscriberLevel| (l.subscribers as f64, if pick == 0 { l.latency.p50_ms } else { l.latency.p99_ms });
        let points = subscribers.shared.iter().map(latency).filter(|p| p.1 > 0.0).collect();
        line(&mut chart, points, c, label)?;
        let crosses: Vec<(f64, f64)> = subscribers.distinct.iter().map(latency).filter(|p| p.1 > 0.0).collect();
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
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// The gateway's memory and CPU against the number of subscribers.
fn subscriber_resources_panel<DB: DrawingBackend>(panel: &Panel<DB>, subscribers: &Subscribers) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (sxlo, sxhi) = subscribers.x_range;
    let values = subscribers
        .all
        .iter()
        .flat_map(|l| [l.rss_connected_mib.unwrap_or(0.0), l.peak_rss_mib.unwrap_or(0.0), l.cpu_percent.unwrap_or(0.0)]);
    let yhi = values.fold(10.0f64, f64::max) * 1.2;
    let mut chart =
        builder(panel, "subscribers: gateway memory and CPU").build_cartesian_2d((sxlo..sxhi).log_scale(), 0.0..yhi)?;
    chart
        .configure_mesh()
        .x_desc("WebSocket subscribers (log)")
        .y_desc("MiB  /  % of one core")
        .label_style((FONT, 15))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let measures: [(&str, fn(&SubscriberLevel) -> Option<f64>, RGBColor); 3] = [
        ("RSS with subscribers connected (MiB)", |l| l.rss_connected_mib, RGBColor(0x1f, 0x77, 0xb4)),
        ("peak RSS while posts flow (MiB)", |l| l.peak_rss_mib, RGBColor(0x2c, 0xa0, 0x2c)),
        ("CPU while posts flow (% of a core)", |l| l.cpu_percent, RGBColor(0xff, 0x7f, 0x0e)),
    ];
    for (label, measure, c) in measures {
        let points = subscribers.shared.iter().filter_map(|l| Some((l.subscribers as f64, measure(l)?))).collect();
        line(&mut chart, points, c, label)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
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
        super::draw_on(SVGBackend::with_string(&mut svg, super::SIZE).into_drawing_area(), &fixture::results())
            .expect("the chart draws");
        fixture::assert_unchanged("chart.svg", &svg);
    }
}
