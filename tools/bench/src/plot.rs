//! SVG bar charts of erases per sector (plotters, SVG backend only).

use std::path::Path;

use plotters::prelude::*;

/// Draws `erases` (one bar per sector) with `title` into the SVG file `path`.
pub fn erase_chart(path: &Path, title: &str, erases: &[u32]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (720, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let top = erases.iter().copied().max().unwrap_or(0);
    let y_max = top + (top / 10).max(1);
    let sectors = erases.len().max(1) as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0u32..sectors - 1).into_segmented(), 0u32..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("sector")
        .y_desc("erases")
        .x_labels(sectors as usize)
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(RGBColor(0x33, 0x66, 0x99).filled())
                .margin(6)
                .data(erases.iter().enumerate().map(|(i, &e)| (i as u32, e))),
        )
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
