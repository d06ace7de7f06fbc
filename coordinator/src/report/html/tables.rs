//! Drawing the report's tables ([`Tables`]) as HTML: thresholds and
//! regressions (shown first), then throughput, latency, errors, requests,
//! stages, recovery and workers, as in `report.md`.

use super::{esc, pill};
use crate::report::table::{Cell, Table, Tables};
use crate::report::ThresholdStatus;
use std::fmt::Write;

fn cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) => esc(s),
        Cell::Code(s) => format!("<code>{}</code>", esc(s)),
        Cell::Tagged(s, tag) => format!("{} <em>({tag})</em>", esc(s)),
        Cell::Mark(status) => pill(*status),
        Cell::YesNo(yes) => pill(ThresholdStatus::from_pass(*yes)),
    }
}

/// A table, every column of it; text columns are aligned left.
fn draw(o: &mut String, t: &Table) {
    let class = |i: usize| {
        if t.columns[i].text {
            " class=\"l\""
        } else {
            ""
        }
    };
    o.push_str("<div class=\"tw\"><table><thead><tr>");
    for (i, c) in t.columns.iter().enumerate() {
        let _ = write!(o, "<th{}>{}</th>", class(i), c.head);
    }
    o.push_str("</tr></thead><tbody>\n");
    for row in &t.rows {
        o.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let _ = write!(o, "<td{}>{}</td>", class(i), cell(c));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table></div>\n");
}

/// Thresholds and regressions with their marks: what a reader checks first.
pub(super) fn judgements(o: &mut String, t: &Tables) {
    if let Some(t) = &t.thresholds {
        o.push_str("<h2>Thresholds</h2>\n");
        draw(o, t);
    }
    if let Some(t) = &t.regressions {
        o.push_str("<h2>Regressions against the baseline</h2>\n");
        draw(o, t);
    }
}

/// The figures behind the charts. Resource use is in the workers table;
/// soak windows are Markdown's alone.
pub(super) fn figures(o: &mut String, t: &Tables) {
    o.push_str("<h2>Throughput</h2>\n");
    draw(o, &t.throughput);
    o.push_str("<h2>Latency</h2>\n<p class=\"note\">From the scheduled send time (coordinated-omission correct); service time is from the actual send; send lag is Volley's own lateness (actual − scheduled send), which latency includes.</p>\n");
    draw(o, &t.latency);
    if let Some(t) = &t.errors {
        o.push_str("<h2>Errors</h2>\n");
        draw(o, t);
    }
    if let Some(t) = &t.requests {
        o.push_str("<h2>Requests</h2>\n");
        draw(o, t);
    }
    o.push_str("<h2>Stages</h2>\n");
    draw(o, &t.stages);
    if let Some(t) = &t.recovery {
        o.push_str("<h2>Recovery</h2>\n");
        draw(o, t);
    }
    o.push_str("<h2>Workers</h2>\n");
    draw(o, &t.workers);
}
