//! The page frame, and the small pieces pages share: quota bars, sizes, dates and the
//! usage chart.
//!
//! Charts are SVG built here through maud rather than with `plotters`: a line of daily
//! samples needs a polyline and a few labels, maud escapes every text in them, and the
//! result uses classes from our stylesheet only (no inline `style`, which the strict
//! Content-Security-Policy forbids); `plotters` would add a font stack and emit inline
//! styles for the same picture.

use crate::session::{Role, Session};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// A size for people (`1.5 MiB`).
pub fn human(n: u64) -> String {
    letterbox_proto::human_size(n)
}

/// A Unix time as `2026-12-06 19:21 UTC`.
pub fn datetime(unix: i64) -> String {
    let (y, m, d) = civil(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// A day number as `2026-12-06`.
pub fn date(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's civil_from_days).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Usage as a percentage of a limit (0 when unlimited).
pub fn percent(used: u64, limit: Option<u64>) -> u64 {
    match limit {
        Some(0) => 100,
        Some(l) => ((used as u128 * 100) / l as u128) as u64,
        None => 0,
    }
}

/// A quota bar: an SVG rectangle (the CSP allows no inline style), coloured by level.
pub fn quota_bar(used: u64, limit: Option<u64>) -> Markup {
    let p = percent(used, limit);
    let class = if p >= 95 {
        "full"
    } else if p >= 80 {
        "warn"
    } else {
        "ok"
    };
    let label = match limit {
        Some(l) => format!("{} of {} ({p}%)", human(used), human(l)),
        None => format!("{} (no limit)", human(used)),
    };
    html! {
        div class="bar" role="img" aria-label=(label) title=(label) {
            svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 10" preserveAspectRatio="none" {
                rect class=(class) x="0" y="0" height="10" width=(p.min(100)) {}
            }
        }
    }
}

/// One point of a chart.
pub struct Point {
    pub day: i64,
    pub value: u64,
    pub limit: Option<u64>,
}

/// A line chart of daily values (usage over time), with the limit as a dashed line.
pub fn chart(title: &str, points: &[Point]) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 200.0;
    const L: f64 = 62.0; // left margin for the labels
    const B: f64 = 22.0; // bottom margin
    const T: f64 = 10.0;
    if points.is_empty() {
        return html! { p class="muted" { "No samples yet: the first is taken when the server starts." } };
    }
    let first = points[0].day;
    let last = points[points.len() - 1].day.max(first + 1);
    let top = points
        .iter()
        .map(|p| p.value.max(p.limit.unwrap_or(0)))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |day: i64| L + (day - first) as f64 / (last - first) as f64 * (W - L - 8.0);
    let y = |v: u64| T + (1.0 - v as f64 / top) * (H - T - B);
    let mut line = String::new();
    for p in points {
        line.push_str(&format!("{:.1},{:.1} ", x(p.day), y(p.value)));
    }
    // A single sample still shows: as a short flat line.
    if points.len() == 1 {
        line.push_str(&format!("{:.1},{:.1} ", x(last), y(points[0].value)));
    }
    let area = format!(
        "{:.1},{:.1} {line}{:.1},{:.1}",
        x(first),
        H - B,
        x(if points.len() == 1 {
            last
        } else {
            points[points.len() - 1].day
        }),
        H - B
    );
    let mut limit_line = String::new();
    for p in points {
        if let Some(l) = p.limit {
            limit_line.push_str(&format!("{:.1},{:.1} ", x(p.day), y(l)));
        }
    }
    if points.len() == 1 {
        if let Some(l) = points[0].limit {
            limit_line.push_str(&format!("{:.1},{:.1}", x(last), y(l)));
        }
    }
    html! {
        svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
            title { (title) }
            polyline class="axis" points=(format!("{L},{T} {L},{} {},{}", H - B, W - 4.0, H - B)) {}
            polygon class="area" points=(area) {}
            @if !limit_line.is_empty() {
                polyline class="limit" points=(limit_line) {}
            }
            polyline class="line" points=(line) {}
            text x="4" y=(T + 8.0) { (human(top as u64)) }
            text x="4" y=(H - B) { "0" }
            text x=(L) y=(H - 6.0) { (date(first)) }
            text x=(W - 8.0) y=(H - 6.0) text-anchor="end" { (date(points[points.len() - 1].day)) }
        }
    }
}

/// The page frame: header with navigation (operator links for operators), the content.
pub fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Letterbox" }
                link rel="stylesheet" href="/static/portal.css";
            }
            body {
                header {
                    span class="brand" { "Letterbox" }
                    @if let Some(s) = session {
                        nav {
                            a href="/usage" { "Usage" }
                            a href="/request" { "More room" }
                            a href="/reading" { "Reading mail" }
                            a href="/account" { "Account" }
                            @if s.role != Role::User {
                                a href="/admin/accounts" { "Accounts" }
                                a href="/admin/requests" { "Requests" }
                                a href="/admin/domains" { "Domains" }
                            }
                        }
                        span class="muted" { (s.account.address) }
                        form class="inline" method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button class="link" type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A one-line notice from a `?done=` redirect, escaped like everything else.
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            @if !t.is_empty() { p class="notice" role="status" { (t) } }
        }
    }
}

/// Raw markup for the rare fixed snippet.
pub fn raw(s: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_428), "2025-12-06");
        assert_eq!(datetime(1_796_584_905), "2026-12-06 19:21 UTC");
    }

    #[test]
    fn text_is_escaped_in_charts_and_bars() {
        let m = chart(
            "<script>",
            &[Point {
                day: 1,
                value: 5,
                limit: Some(10),
            }],
        )
        .into_string();
        assert!(m.contains("&lt;script&gt;") && !m.contains("<script>"));
        assert!(quota_bar(90, Some(100))
            .into_string()
            .contains("class=\"warn\""));
    }
}
