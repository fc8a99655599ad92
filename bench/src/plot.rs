//! PNG plots of an e2e run with `plotters` (bitmap backend, DejaVu Sans embedded):
//! CPU against camera count for edgecam and both peers, and latency percentiles.

use crate::e2e_report::{AtN, E2eReport, Pcts};
use anyhow::{Context, anyhow};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// DejaVu Sans (Bitstream Vera licence, `bench/fonts/LICENSE-DejaVu.txt`).
const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Plot size in pixels.
const SIZE: (u32, u32) = (960, 600);

/// One line: label, colour, points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// Renders `e2e-cpu.png` and `e2e-latency.png` into `dir`; returns their paths.
pub fn render(report: &E2eReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // Registering twice (a second call in one process) only replaces the same font.
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded font is invalid"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let r = &report.results;
    let line = |f: &dyn Fn(&AtN) -> Option<f64>| -> Vec<(f64, f64)> {
        r.iter()
            .filter_map(|x| f(x).map(|v| (f64::from(x.streams), v)))
            .collect()
    };
    let cpu: Vec<Series> = vec![
        (
            "edgecam, no viewer".into(),
            RGBColor(0, 114, 178),
            line(&|x| Some(x.edgecam.idle.cpu_pct)),
        ),
        (
            "edgecam, one H.264 viewer".into(),
            RGBColor(86, 180, 233),
            line(&|x| Some(x.edgecam.h264.usage.cpu_pct)),
        ),
        (
            "edgecam, one JPEG viewer".into(),
            RGBColor(0, 158, 115),
            line(&|x| Some(x.edgecam.jpeg.usage.cpu_pct)),
        ),
        (
            "ffmpeg decode-all".into(),
            RGBColor(213, 94, 0),
            line(&|x| x.ffmpeg.as_ref().map(|f| f.usage.cpu_pct)),
        ),
        (
            "GStreamer MJPEG switcher, one viewer".into(),
            RGBColor(204, 121, 167),
            line(&|x| x.gstreamer.as_ref().map(|g| g.usage.cpu_pct)),
        ),
    ];
    let title = format!(
        "CPU vs cameras (1080p25, {} kbit/s) on {} ({} cores, shared)",
        report.params.bitrate_kbps, report.run.machine.host, report.run.machine.cores
    );
    let cpu_path = dir.join("e2e-cpu.png");
    chart(&cpu_path, &title, "% of one core (log scale)", &cpu)?;

    let p95 = |v: &Option<Pcts>| v.map(|p| p.ranks.p95);
    let lat: Vec<Series> = vec![
        (
            "H.264 first frame p95".into(),
            RGBColor(0, 114, 178),
            line(&|x| p95(&x.edgecam.h264.first_frame_ms)),
        ),
        (
            "H.264 switch p95".into(),
            RGBColor(86, 180, 233),
            line(&|x| p95(&x.edgecam.h264.switch_ms)),
        ),
        (
            "H.264 alarm p95".into(),
            RGBColor(0, 0, 0),
            line(&|x| p95(&x.edgecam.h264.alarm_ms)),
        ),
        (
            "H.264 ingest to receive p99".into(),
            RGBColor(120, 120, 120),
            line(&|x| x.edgecam.h264.ingest_to_recv_ms.map(|p| p.ranks.p99)),
        ),
        (
            "JPEG switch p95".into(),
            RGBColor(0, 158, 115),
            line(&|x| p95(&x.edgecam.jpeg.switch_ms)),
        ),
        (
            "JPEG ingest to receive p99".into(),
            RGBColor(230, 159, 0),
            line(&|x| x.edgecam.jpeg.ingest_to_recv_ms.map(|p| p.ranks.p99)),
        ),
        (
            "GStreamer switch p95".into(),
            RGBColor(204, 121, 167),
            line(&|x| x.gstreamer.as_ref().and_then(|g| p95(&g.switch_ms))),
        ),
        (
            "GStreamer first frame p95".into(),
            RGBColor(213, 94, 0),
            line(&|x| x.gstreamer.as_ref().and_then(|g| p95(&g.first_frame_ms))),
        ),
    ];
    let lat_path = dir.join("e2e-latency.png");
    chart(
        &lat_path,
        "Latency vs cameras (same run)",
        "milliseconds (log scale)",
        &lat,
    )?;
    Ok(vec![cpu_path, lat_path])
}

/// A log-scale line chart of `series` against camera count.
fn chart(path: &Path, title: &str, y_label: &str, series: &[Series]) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let xs = series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let x_max = xs.fold(1.0f64, f64::max);
    let (y_min, y_max) = ys
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (y_min, y_max) = if y_max > 0.0 {
        // Head room above the data for the legend (log scale: a factor, not an offset).
        (y_min / 2.0, y_max * 25.0)
    } else {
        (0.1, 10.0)
    };
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max + 1.0, (y_min..y_max).log_scale())
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("camera streams")
        .y_desc(y_label)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| err(&e))?;
    for (label, colour, pts) in series.iter().filter(|s| !s.2.is_empty()) {
        let colour = *colour;
        let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.1 > 0.0).collect();
        c.draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        c.draw_series(PointSeries::of_element(
            pts,
            4,
            colour.filled(),
            &|p, s, st| Circle::new(p, s, st),
        ))
        .map_err(|e| err(&e))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
