//! The timeline as a PNG: throughput, p50/p99 latency and errors per second in three panels
//! over one time axis, with the events as vertical markers. Text is drawn with the DejaVu Sans
//! file in `bench/assets` (its licence beside it), so no system font library is needed.

use std::path::Path;

use plotters::prelude::*;

use super::report::Event;
use super::stats::{SecondRow, ERROR_CLASSES};

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1100;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

/// The colours of the error classes, in the order of `ERROR_CLASSES`.
const ERROR_COLOURS: [RGBColor; 5] = [
    RGBColor(230, 140, 0),
    RGBColor(200, 0, 0),
    RGBColor(120, 0, 160),
    RGBColor(0, 120, 120),
    RGBColor(90, 90, 90),
];
const MARKER: RGBColor = RGBColor(150, 60, 200);

struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    /// (legend label, colour, line width, value per row)
    lines: Vec<(String, RGBColor, u32, Vec<f64>)>,
}

/// Draws `rows` and `events` into a PNG at `path`.
pub fn write_png(
    path: &Path,
    title: &str,
    rows: &[SecondRow],
    events: &[Event],
) -> Result<(), String> {
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| "plot: the bundled font does not load".to_owned())?;
    let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    let col = |f: &dyn Fn(&SecondRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let mut error_lines: Vec<(String, RGBColor, u32, Vec<f64>)> = ERROR_CLASSES
        .iter()
        .enumerate()
        .filter(|(k, _)| rows.iter().any(|r| r.errors[*k] > 0))
        .map(|(k, c)| {
            (
                c.to_string(),
                ERROR_COLOURS[k],
                2,
                col(&|r| r.errors[k] as f64),
            )
        })
        .collect();
    if error_lines.is_empty() {
        error_lines.push(("errors (none)".into(), ERROR_COLOURS[1], 2, col(&|_| 0.0)));
    }
    let panels = [
        Panel {
            caption: "Throughput",
            y_desc: "requests per second",
            lines: vec![
                // The wide light line shows where errors take answers away from 2xx.
                (
                    "all answers".into(),
                    RGBColor(120, 160, 255),
                    6,
                    col(&|r| r.requests as f64),
                ),
                ("2xx".into(), RGBColor(0, 140, 0), 2, col(&|r| r.ok as f64)),
            ],
        },
        Panel {
            caption: "Latency (each second's requests)",
            y_desc: "milliseconds",
            lines: vec![
                ("p50".into(), BLUE, 2, col(&|r| r.p50_ms)),
                ("p99".into(), RED, 2, col(&|r| r.p99_ms)),
            ],
        },
        Panel {
            caption: "Errors",
            y_desc: "errors per second",
            lines: error_lines,
        },
    ];
    let x_max = (rows.len() as f64).max(events.iter().map(|e| e.second + 1.0).fold(1.0, f64::max));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, (FAMILY, 24)).map_err(err)?;
        let areas = root.split_evenly((3, 1));
        for (n, (area, panel)) in areas.iter().zip(&panels).enumerate() {
            let y_top = panel
                .lines
                .iter()
                .flat_map(|l| l.3.iter().copied())
                .fold(0.0, f64::max);
            let y_max = if y_top > 0.0 { y_top * 1.15 } else { 1.0 };
            let mut chart = ChartBuilder::on(area)
                .caption(panel.caption, (FAMILY, 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(0f64..x_max, 0f64..y_max)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("seconds since the load started")
                .y_desc(panel.y_desc)
                .label_style((FAMILY, 14))
                .axis_desc_style((FAMILY, 15))
                .draw()
                .map_err(err)?;
            for (label, colour, width, values) in &panel.lines {
                // Each second's value drawn at the middle of its second.
                let points = values.iter().enumerate().map(|(i, v)| (i as f64 + 0.5, *v));
                let (colour, width) = (*colour, *width);
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(width)))
                    .map_err(err)?
                    .label(label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(width))
                    });
            }
            for (k, e) in events.iter().enumerate() {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(e.second, 0.0), (e.second, y_max)],
                        MARKER.stroke_width(1),
                    )))
                    .map_err(err)?;
                if n == 0 {
                    // Labels staggered over three rows so that close events stay readable.
                    let y = y_max * (0.97 - 0.09 * (k % 3) as f64);
                    chart
                        .draw_series(std::iter::once(Text::new(
                            e.label.clone(),
                            (e.second, y),
                            (FAMILY, 13).into_font().color(&MARKER),
                        )))
                        .map_err(err)?;
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 14))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    encode(path, &buf)
}

fn encode(path: &Path, rgb: &[u8]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Mostly flat colour: the best compression keeps the file small for little time.
    encoder.set_compression(png::Compression::Best);
    encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut writer = encoder.write_header().map_err(|e| format!("png: {e}"))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| format!("png: {e}"))?;
    writer.finish().map_err(|e| format!("png: {e}"))
}
