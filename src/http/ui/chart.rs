//! A station's balance over time as an inline SVG step line, drawn on the server: the balance
//! holds from one recorded change to the next, so the line steps rather than slopes.

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::format::{cop, instante};
use crate::settings::ServiceTimeZone;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
/// Room for the amounts on the left and the dates below.
const LEFT: f64 = 96.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// One answer of the ledger: the balance as it stood at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub saldo: Decimal,
}

/// Where a value falls between `low` and `high`, from 0 to 1. Pixels only: the amounts
/// themselves stay decimals, and only this ratio becomes a float.
fn ratio(value: Decimal, low: Decimal, high: Decimal) -> f64 {
    if high == low {
        return 0.5;
    }
    ((value - low) / (high - low)).to_f64().unwrap_or(0.5)
}

/// The points in order of time, as an SVG step line with the zero line, the highest and lowest
/// amounts and the first and last dates; each point says its instant and balance on hover.
pub fn balance_chart(points: &[Point], zone: &ServiceTimeZone) -> Markup {
    debug_assert!(points.windows(2).all(|w| w[0].at <= w[1].at));
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.aviso { "La estación no tiene movimientos hasta esta fecha." } };
    };
    let high = points
        .iter()
        .map(|p| p.saldo)
        .fold(Decimal::ZERO, Decimal::max);
    let low = points
        .iter()
        .map(|p| p.saldo)
        .fold(Decimal::ZERO, Decimal::min);
    let span_ms = (last.at - first.at).num_milliseconds();
    let x = |at: DateTime<Utc>| {
        let share = if span_ms == 0 {
            0.5
        } else {
            (at - first.at).num_milliseconds() as f64 / span_ms as f64
        };
        LEFT + share * (WIDTH - LEFT - RIGHT)
    };
    let y = |saldo: Decimal| TOP + (1.0 - ratio(saldo, low, high)) * (HEIGHT - TOP - BOTTOM);
    let mut path = format!("M{:.1},{:.1}", x(first.at), y(first.saldo));
    for point in &points[1..] {
        path.push_str(&format!(" H{:.1} V{:.1}", x(point.at), y(point.saldo)));
    }
    if span_ms == 0 {
        // One instant: a short level line, so that a lone balance is still seen as a line.
        path = format!("M{:.1},{:.1} H{:.1}", LEFT, y(first.saldo), WIDTH - RIGHT);
    }
    let zero = y(Decimal::ZERO);
    html! {
        svg.grafica #grafica-saldo xmlns="http://www.w3.org/2000/svg"
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
            aria-label="Saldo de la estación en el tiempo" {
            title { "Saldo de la estación en el tiempo" }
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{zero:.1}")) y2=(format!("{zero:.1}"))
                stroke="#8a96a3" stroke-dasharray="4 3" {}
            text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" font-size="11" fill="#1d2733" { (cop(high)) }
            text x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" font-size="11" fill="#1d2733" { (cop(low)) }
            text x=(LEFT) y=(HEIGHT - 8.0) font-size="11" fill="#1d2733" { (instante(first.at, zone)) }
            text x=(WIDTH - RIGHT) y=(HEIGHT - 8.0) text-anchor="end" font-size="11" fill="#1d2733" { (instante(last.at, zone)) }
            path d=(path) fill="none" stroke="#2f5d8a" stroke-width="2" {}
            @for point in points {
                circle.punto cx=(format!("{:.1}", x(point.at))) cy=(format!("{:.1}", y(point.saldo))) r="3.5"
                    fill=(if point.saldo < Decimal::ZERO { "#c62828" } else { "#2f5d8a" }) {
                    title { (instante(point.at, zone)) ": " (cop(point.saldo)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn zone() -> ServiceTimeZone {
        "America/Bogota".parse().unwrap()
    }

    #[test]
    fn every_answer_is_a_point_and_negative_ones_are_red() {
        let at = |s| Utc.with_ymd_and_hms(2024, 3, 15, 12, 0, s).unwrap();
        let points = [
            Point {
                at: at(0),
                saldo: Decimal::from(500_000),
            },
            Point {
                at: at(30),
                saldo: Decimal::from(-150_000),
            },
        ];
        let svg = balance_chart(&points, &zone()).into_string();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("15/03/2024 07:00:00: $ 500.000"), "{svg}");
        assert!(svg.contains("15/03/2024 07:00:30: -$ 150.000"), "{svg}");
        assert!(svg.contains("fill=\"#c62828\""), "{svg}");
        assert!(svg.starts_with("<svg"), "{svg}");
    }

    #[test]
    fn no_answer_draws_no_chart_but_says_so() {
        let text = balance_chart(&[], &zone()).into_string();
        assert!(!text.contains("<svg"));
        assert!(text.contains("no tiene movimientos"));
    }
}
