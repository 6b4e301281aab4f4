//! Charts as SVG strings drawn with plotters (no font backend: the browser renders the text).

use plotters::prelude::*;

const WIDTH: u32 = 420;
const HEIGHT: u32 = 260;
const BINS: usize = 30;

/// Strips what an inline SVG does not need: the XML declaration and namespace attributes (an HTML5
/// parser puts `<svg>` in the SVG namespace itself), so the report holds no URL at all.
pub(crate) fn inline_svg(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    let mut out = svg[start..].to_string();
    for attr in ["xmlns:rdkit", "xmlns:xlink", "xmlns"] {
        while let Some(at) = out.find(&format!(" {attr}=")) {
            let quote_start = at + attr.len() + 2;
            let quote = out.as_bytes().get(quote_start).copied().unwrap_or(b'"') as char;
            let end = out[quote_start + 1..]
                .find(quote)
                .map_or(out.len(), |e| quote_start + 1 + e + 1);
            out.replace_range(at..end, "");
        }
    }
    out
}

fn finite(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|x| x.is_finite()).collect()
}

/// Fractions of `values` per bin over [lo, hi].
fn histogram(values: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let mut counts = vec![0.0; BINS];
    if values.is_empty() {
        return counts;
    }
    let width = (hi - lo) / BINS as f64;
    for &v in values {
        let bin = if width > 0.0 {
            ((v - lo) / width).floor() as isize
        } else {
            0
        };
        counts[bin.clamp(0, BINS as isize - 1) as usize] += 1.0;
    }
    counts.iter().map(|c| c / values.len() as f64).collect()
}

/// Overlaid histograms (fraction per bin) of a property in the generated and reference sets.
pub(crate) fn distribution_svg(name: &str, generated: &[f64], reference: Option<&[f64]>) -> String {
    let generated = finite(generated);
    let reference = reference.map(finite);
    let all = generated.iter().chain(reference.iter().flatten());
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let gen_hist = histogram(&generated, lo, hi);
    let ref_hist = reference.as_ref().map(|r| histogram(r, lo, hi));
    let top = gen_hist
        .iter()
        .chain(ref_hist.iter().flatten())
        .copied()
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let width = (hi - lo) / BINS as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .caption(name, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(lo..hi, 0.0..top);
        if let Ok(mut chart) = chart {
            let _ = chart.configure_mesh().disable_mesh().y_desc("fraction").draw();
            let steps = |hist: &[f64]| -> Vec<(f64, f64)> {
                let mut pts = vec![(lo, 0.0)];
                for (i, &h) in hist.iter().enumerate() {
                    let x0 = lo + i as f64 * width;
                    pts.push((x0, h));
                    pts.push((x0 + width, h));
                }
                pts.push((hi, 0.0));
                pts
            };
            if let Some(r) = &ref_hist {
                let area = AreaSeries::new(steps(r), 0.0, RGBColor(180, 180, 180).mix(0.5))
                    .border_style(RGBColor(120, 120, 120));
                if let Ok(series) = chart.draw_series(area) {
                    series.label("training set").legend(|(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], RGBColor(180, 180, 180).filled())
                    });
                }
            }
            let line = LineSeries::new(steps(&gen_hist), RGBColor(31, 119, 180).stroke_width(2));
            if let Ok(series) = chart.draw_series(line) {
                series.label("generated").legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], RGBColor(31, 119, 180).stroke_width(2))
                });
            }
            let _ = chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw();
        }
        let _ = root.present();
    }
    inline_svg(&svg)
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Line chart of several series against `steps` (the x axis, described by `x_desc`).
pub(crate) fn curves_svg(title: &str, x_desc: &str, steps: &[f64], series: &[(&str, &[f64])]) -> String {
    let values = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let (x0, x1) = (
        steps.first().copied().unwrap_or(0.0),
        steps
            .last()
            .copied()
            .unwrap_or(1.0)
            .max(steps.first().copied().unwrap_or(0.0) + 1.0),
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH + 120, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad));
        if let Ok(mut chart) = chart {
            let _ = chart.configure_mesh().x_desc(x_desc).draw();
            for (i, (name, vals)) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let pts: Vec<(f64, f64)> = steps
                    .iter()
                    .zip(vals.iter())
                    .filter(|(_, v)| v.is_finite())
                    .map(|(&s, &v)| (s, v))
                    .collect();
                if let Ok(s) = chart.draw_series(LineSeries::new(pts, color.stroke_width(2))) {
                    s.label(*name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2))
                    });
                }
            }
            let _ = chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw();
        }
        let _ = root.present();
    }
    inline_svg(&svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_fractions_sum_to_one() {
        let h = histogram(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0);
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(h[BINS - 1], 0.5);
    }

    #[test]
    fn svg_has_no_namespace_url() {
        let svg = distribution_svg("QED", &[0.1, 0.5, 0.9], Some(&[0.2, 0.4]));
        assert!(svg.starts_with("<svg"));
        assert!(!svg.contains("http"));
        let svg = curves_svg(
            "reward",
            "step",
            &[0.0, 1.0, 2.0],
            &[("mean", &[0.1, 0.2, 0.4]), ("max", &[0.5, f64::NAN, 0.9])],
        );
        assert!(svg.contains("<path") || svg.contains("<polyline"));
        assert!(!svg.contains("http"));
    }
}
