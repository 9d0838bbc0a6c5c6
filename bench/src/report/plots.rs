//! SVG plots of the evidence (plotters, SVG backend, no font files needed).

use std::path::Path;

use plotters::prelude::*;

type Res = Result<(), String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Grouped bars: one group per `groups` entry, one bar per series.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> Res {
    let root = SVGBackend::new(path, (860, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(1.0f64, |a, b| a.max(*b))
        * 1.18;
    let n = groups.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&|x| {
            let k = (x * 2.0).round() as i64;
            if k % 2 == 1 && (x * 2.0 - k as f64).abs() < 1e-6 {
                groups.get((k / 2) as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(err)?;
    let width = 0.8 / series.len().max(1) as f64;
    for (s, (name, values)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let bars: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(g, v)| v.map(|v| (g as f64 + 0.1 + s as f64 * width, v)))
            .collect();
        chart
            .draw_series(
                bars.iter().map(|(x, v)| {
                    Rectangle::new([(*x, 0.0), (x + width * 0.92, *v)], color.filled())
                }),
            )
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart
            .draw_series(bars.iter().map(|(x, v)| {
                Text::new(
                    format!("{v:.0}"),
                    (x + width * 0.05, v + ymax * 0.035),
                    ("sans-serif", 11).into_font(),
                )
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// One line of an x/y plot.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Thin line with crosses instead of a thick line with dots.
    pub thin: bool,
    pub color: usize,
}

/// Lines over a numeric x axis; `x_names` labels integer x positions when given.
#[allow(clippy::too_many_arguments)]
pub fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    log_y: bool,
    x_names: Option<&[&str]>,
    markers_x: &[(f64, &str)],
) -> Res {
    let root = SVGBackend::new(path, (860, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let all: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|l| l.points.iter().copied())
        .collect();
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if all.is_empty() {
        (x0, x1) = (0.0, 1.0);
    }
    if x_names.is_some() {
        x0 -= 0.3;
        x1 += 0.3;
    } else if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let ymax = all.iter().fold(1.0f64, |a, p| a.max(p.1)) * 1.2;
    let ymin = all
        .iter()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::MAX, f64::min)
        .min(ymax / 10.0)
        * 0.8;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80);
    let x_fmt = |x: &f64| match x_names {
        Some(names) if (x - x.round()).abs() < 1e-6 && *x >= 0.0 => names
            .get(x.round() as usize)
            .map_or(String::new(), |s| (*s).to_owned()),
        Some(_) => String::new(),
        None => format!("{x:.0}"),
    };
    let x_count = x_names.map_or(10, |n| n.len() * 4 + 1);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .x_labels(x_count)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|y| format!("{y:.0}"))
                .x_desc(x_desc)
                .y_desc(y_desc)
                .draw()
                .map_err(err)?;
            for (x, label) in markers_x {
                let (ya, yb) = (if log_y { ymin } else { 0.0 }, ymax);
                chart
                    .draw_series(LineSeries::new(vec![(*x, ya), (*x, yb)], BLACK.mix(0.5)))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        (*label).to_owned(),
                        (*x, yb * 0.9),
                        ("sans-serif", 12).into_font(),
                    )))
                    .map_err(err)?;
            }
            for l in lines {
                let color = COLORS[l.color % COLORS.len()];
                let style = if l.thin {
                    color.stroke_width(1)
                } else {
                    color.stroke_width(3)
                };
                chart
                    .draw_series(LineSeries::new(l.points.clone(), style))
                    .map_err(err)?
                    .label(l.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
                if l.thin {
                    chart
                        .draw_series(l.points.iter().map(|p| Cross::new(*p, 4, color)))
                        .map_err(err)?;
                } else {
                    chart
                        .draw_series(l.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                        .map_err(err)?;
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }};
    }
    if log_y {
        finish!(builder
            .build_cartesian_2d(x0..x1, (ymin..ymax).log_scale())
            .map_err(err)?);
    } else {
        finish!(builder
            .build_cartesian_2d(x0..x1, 0f64..ymax)
            .map_err(err)?);
    }
    root.present().map_err(err)
}
