//! The report's charts, drawn by plotters into inline SVG strings.
//!
//! Only plotters' SVG backend is used: text becomes `<text>` elements that
//! the browser sets in its own fonts, so no font file is read or embedded.
//! Every time chart shades the burst stages and marks each burst's recovery
//! window, so a latency spike can be read against the load that caused it.

use crate::report::Report;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;

/// Natural size of a chart; the page scales it to its column's width.
const SIZE: (u32, u32) = (680, 340);
/// Plotters writes `font-size` as size / 1.24: 19 gives ~15 px.
const FONT: u32 = 19;
/// Room right of a time chart's plot for its legend, pixels.
const LEGEND_W: u32 = 122;

pub const P50: RGBColor = RGBColor(31, 119, 180);
pub const P90: RGBColor = RGBColor(140, 86, 200);
pub const P99: RGBColor = RGBColor(240, 120, 10);
pub const MAX: RGBColor = RGBColor(200, 30, 40);
pub const TARGET: RGBColor = RGBColor(110, 110, 110);
pub const SENT: RGBColor = RGBColor(31, 119, 180);
pub const OK: RGBColor = RGBColor(44, 160, 44);
pub const ERRORS: RGBColor = RGBColor(214, 39, 40);
pub const DROPPED: RGBColor = RGBColor(148, 103, 189);
const BURST: RGBColor = RGBColor(245, 190, 60);
const RECOVERED: RGBColor = RGBColor(60, 170, 90);
const UNRECOVERED: RGBColor = RGBColor(220, 60, 60);
const GRID: RGBColor = RGBColor(235, 235, 235);

/// What a time chart draws, in data coordinates (x in seconds).
pub enum Mark {
    /// A line through the points; `None` breaks it (a second without data).
    Line {
        name: &'static str,
        color: RGBColor,
        width: u32,
        points: Vec<(f64, Option<f64>)>,
    },
    /// Bars `(x0, x1, y0, y1)`, all in one legend entry.
    Bars {
        name: &'static str,
        color: RGBColor,
        bars: Vec<(f64, f64, f64, f64)>,
    },
}

pub enum Scale {
    Linear,
    Log,
}

/// A chart over the run's time axis.
pub struct TimeChart<'a> {
    pub label: &'a str,
    pub y_desc: &'a str,
    pub scale: Scale,
    /// The least top of a linear y axis, so an all-zero chart reads 0 … floor.
    pub floor: f64,
    pub marks: Vec<Mark>,
}

/// Renders a time chart to an SVG element, or a note saying why it could not.
pub fn time_chart(r: &Report, c: &TimeChart<'_>) -> String {
    let ys = c.marks.iter().flat_map(|m| match m {
        Mark::Line { points, .. } => points.iter().filter_map(|p| p.1).collect::<Vec<_>>(),
        Mark::Bars { bars, .. } => bars.iter().map(|b| b.3).collect(),
    });
    let (lo, hi) = ys
        .filter(|y| y.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
    let x_end = r
        .intervals
        .iter()
        .map(|i| f64::from(i.t_s) + 1.0)
        .fold(r.duration_s, f64::max)
        .max(1.0);
    let drawn = match c.scale {
        Scale::Linear => {
            let top = if hi.is_finite() { hi * 1.12 } else { 0.0 }.max(c.floor);
            svg(c.label, |area| {
                draw_time(r, c, area, x_end, 0.0..top, (0.0, top))
            })
        }
        Scale::Log => {
            // Log needs positive bounds; some room below and above the data.
            let lo = if lo.is_finite() && lo > 0.0 { lo } else { 0.1 };
            let hi = if hi.is_finite() && hi > lo {
                hi
            } else {
                lo * 10.0
            };
            let (lo, hi) = (lo / 1.5, hi * 1.8);
            svg(c.label, |area| {
                draw_time(r, c, area, x_end, (lo..hi).log_scale(), (lo, hi))
            })
        }
    };
    drawn.unwrap_or_else(|e| no_chart(c.label, &e))
}

fn no_chart(label: &str, e: &str) -> String {
    format!(
        "<p class=\"nochart\">{} could not be drawn: {}</p>",
        super::esc(label),
        super::esc(e)
    )
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn Error>>;

/// Draws into a fresh SVG string and makes it scale with the page.
fn svg(label: &str, f: impl FnOnce(&Area<'_>) -> Drawn) -> Result<String, String> {
    let mut buf = String::new();
    {
        let area = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        area.fill(&WHITE).map_err(|e| e.to_string())?;
        f(&area).map_err(|e| e.to_string())?;
        area.present().map_err(|e| e.to_string())?;
    }
    // Fixed width and height would stop the SVG from following its column;
    // the namespace is implied in HTML.
    let fixed = format!(
        "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" xmlns=\"http://www.w3.org/2000/svg\">",
        SIZE.0, SIZE.1, SIZE.0, SIZE.1
    );
    let open = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">",
        SIZE.0,
        SIZE.1,
        super::esc(label)
    );
    Ok(buf.replacen(&fixed, &open, 1))
}

fn mesh_text() -> TextStyle<'static> {
    ("sans-serif", FONT)
        .into_font()
        .color(&RGBColor(60, 60, 60))
}

/// Plots a time chart whatever its y scale; `y` is that scale's bounds.
fn draw_time<Y>(
    r: &Report,
    c: &TimeChart<'_>,
    area: &Area<'_>,
    x_end: f64,
    y_range: Y,
    y: (f64, f64),
) -> Drawn
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_right(LEGEND_W)
        .x_label_area_size(46)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end, y_range)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_desc("time since start (s)")
        .y_desc(c.y_desc)
        .label_style(mesh_text())
        .axis_desc_style(mesh_text())
        .x_labels(12)
        .y_labels(8)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .draw()?;

    // Shading first, so the data lies on top of it.
    let mut keys: Vec<(String, Key)> = Vec::new();
    let bursts: Vec<_> = r.stages.iter().filter(|s| s.burst).collect();
    chart.draw_series(bursts.iter().map(|s| {
        Rectangle::new(
            [(s.start_s, y.0), (s.start_s + s.duration_s, y.1)],
            BURST.mix(0.28).filled(),
        )
    }))?;
    if !bursts.is_empty() {
        keys.push(("burst".into(), Key::Band(BURST.mix(0.6))));
    }
    for rec in &r.recovery {
        let Some(s) = r.stages.iter().find(|s| s.name == rec.stage) else {
            continue;
        };
        let (end, color) = (s.start_s + s.duration_s, recovery_color(rec.recovered));
        chart.draw_series(std::iter::once(Rectangle::new(
            [(end, y.0), (end + rec.recovery_time_s, y.1)],
            color.mix(0.13).filled(),
        )))?;
        if rec.recovered {
            let t = end + rec.recovery_time_s;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(t, y.0), (t, y.1)],
                RECOVERED.stroke_width(2),
            )))?;
        }
        let name = if rec.recovered {
            "recovery"
        } else {
            "unrecovered"
        };
        if !keys.iter().any(|k| k.0 == name) {
            keys.push((name.into(), Key::Band(color.mix(0.4))));
        }
    }
    // Stage boundaries, and the name of each stage wide enough to hold it.
    let px_per_s = f64::from(chart.plotting_area().dim_in_pixel().0) / x_end;
    for s in &r.stages {
        if s.start_s > 0.0 {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(s.start_s, y.0), (s.start_s, y.1)],
                RGBColor(150, 150, 150).stroke_width(1),
            )))?;
        }
        if s.duration_s * px_per_s > 8.0 * s.name.chars().count() as f64 + 10.0 {
            let style = ("sans-serif", FONT - 2)
                .into_font()
                .color(&RGBColor(90, 90, 90));
            let pos = chart.backend_coord(&(s.start_s, y.1));
            area.draw(&Text::new(s.name.clone(), (pos.0 + 5, pos.1 + 4), style))?;
        }
    }

    for m in &c.marks {
        match m {
            Mark::Line {
                name,
                color,
                width,
                points,
            } => {
                let style = color.stroke_width(*width);
                for run in points.split(|p| p.1.is_none()) {
                    let run: Vec<(f64, f64)> =
                        run.iter().filter_map(|(x, y)| y.map(|y| (*x, y))).collect();
                    match run[..] {
                        [] => {}
                        [one] => {
                            chart.draw_series(std::iter::once(Circle::new(
                                one,
                                3,
                                style.filled(),
                            )))?;
                        }
                        _ => {
                            chart.draw_series(LineSeries::new(run, style))?;
                        }
                    }
                }
                keys.push((name.to_string(), Key::Line(style)));
            }
            Mark::Bars { name, color, bars } => {
                let fill = color.mix(0.85);
                chart.draw_series(bars.iter().map(|&(x0, x1, y0, y1)| {
                    Rectangle::new([(x0 + 0.08, y0), (x1 - 0.08, y1)], fill.filled())
                }))?;
                keys.push((name.to_string(), Key::Band(fill)));
            }
        }
    }
    // Right of the plot, so it never hides data.
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    legend(area, (xs.end + 10, ys.start + 4), &keys)
}

fn recovery_color(recovered: bool) -> RGBColor {
    if recovered {
        RECOVERED
    } else {
        UNRECOVERED
    }
}

/// A legend entry's swatch.
enum Key {
    Band(RGBAColor),
    Line(ShapeStyle),
}

/// Draws a legend as a column of swatches and names from `at` (pixels).
fn legend(area: &Area<'_>, at: (i32, i32), keys: &[(String, Key)]) -> Drawn {
    let text = ("sans-serif", FONT - 1)
        .into_font()
        .color(&RGBColor(40, 40, 40));
    for (n, (name, key)) in keys.iter().enumerate() {
        let (x, y) = (at.0, at.1 + 22 * n as i32 + 8);
        match key {
            Key::Band(c) => {
                area.draw(&Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled()))?
            }
            Key::Line(s) => area.draw(&PathElement::new(vec![(x, y), (x + 18, y)], *s))?,
        }
        let pos = (x + 24, y);
        area.draw(&Text::new(
            name.clone(),
            pos,
            text.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// The latency spectrum on HdrHistogram's "nines" axis: x = −log10(1 − p),
/// so 0 %, 90 %, 99 %, 99.9 % … are evenly spaced.
pub fn spectrum(r: &Report) -> String {
    const LABEL: &str = "Latency by percentile";
    let n = r.requests.ok.max(1) as f64;
    // Beyond 1 − 1/n every percentile is the max: show the nines the data has.
    let x_end = n.log10().ceil().clamp(1.0, 5.0);
    let nines = |p: f64| -(1.0 - p / 100.0).log10();
    let points: Vec<(f64, f64)> = r
        .percentiles
        .iter()
        .filter(|p| p.percentile < 100.0 && nines(p.percentile) <= x_end + 1e-9)
        .map(|p| (nines(p.percentile), p.latency_ms))
        .collect();
    let max = r
        .latency_ms
        .max
        .or(r.percentiles.last().map(|p| p.latency_ms));
    let top = max.unwrap_or(1.0).max(1e-3) * 1.12;
    svg(LABEL, |area| {
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .margin_right(LEGEND_W)
            .x_label_area_size(46)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_end, 0.0..top)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .label_style(mesh_text())
            .axis_desc_style(mesh_text())
            .x_labels(x_end as usize + 1)
            .y_labels(8)
            .x_label_formatter(&|x| nines_label(*x))
            .y_label_formatter(&|v| num(*v))
            .draw()?;
        let mut keys = Vec::new();
        if let Some(max) = max {
            let style = MAX.mix(0.8).stroke_width(1);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(0.0, max), (x_end, max)],
                style,
            )))?;
            keys.push(("max".to_string(), Key::Line(style)));
        }
        if !points.is_empty() {
            let style = P99.stroke_width(3);
            chart.draw_series(LineSeries::new(points.clone(), style))?;
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, P99.filled())))?;
            keys.push(("latency".to_string(), Key::Line(style)));
        }
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        legend(area, (xs.end + 10, ys.start + 4), &keys)
    })
    .unwrap_or_else(|e| no_chart(LABEL, &e))
}

/// 0 → "0%", 1 → "90%", 2 → "99%", 3 → "99.9%"; blank between the nines.
fn nines_label(x: f64) -> String {
    let k = x.round();
    if (x - k).abs() > 1e-6 || k < 0.0 {
        return String::new();
    }
    let p = 100.0 * (1.0 - 10f64.powf(-k));
    let decimals = (k as usize).saturating_sub(2);
    format!("{p:.decimals$}%")
}

/// Axis numbers: short, no trailing zeros, thousands as "k".
fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        format!("{}k", trim(v / 1000.0, 1))
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(v, 1)
    } else {
        trim(v, 3)
    }
}

fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_labels() {
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(5.0), "99.999%");
        assert_eq!(nines_label(1.5), "");
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(1500.0), "1500");
        assert_eq!(num(25_000.0), "25k");
    }
}
