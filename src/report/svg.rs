//! Inline SVG charts over the seconds of a run: lines and bars on a shared time
//! axis, with fault windows drawn as shaded, labelled bands. Plain strings: no
//! scripts, no fonts or styles fetched from anywhere.

use super::junit::escape;

/// A shaded time range (a fault window), in seconds since the load started.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub start: f64,
    pub end: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    /// One value per second (`t` = index); drawn as a line at the middle of each second.
    pub values: Vec<f64>,
    pub dashed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub y_label: String,
    /// Seconds shown on the x axis.
    pub x_max: f64,
    pub lines: Vec<Series>,
    /// Drawn as bars, one per second.
    pub bars: Option<Series>,
    pub bands: Vec<Band>,
}

const W: f64 = 900.0;
const H: f64 = 260.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 40.0;

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `n` ticks.
pub fn nice_step(max: f64, n: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub fn render(c: &Chart) -> String {
    let x_max = c.x_max.max(1.0);
    let data_max = c
        .lines
        .iter()
        .chain(c.bars.iter())
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    // All zero (no divergence): a 0..1 axis rather than fractions of nothing.
    let (y_step, y_max) = if data_max <= 0.0 {
        (1.0, 1.0)
    } else {
        // At least 15% headroom: the fault labels sit at the top of the plot and
        // must not be drawn over the tallest bar or line.
        let step = nice_step(data_max, 5.0);
        (step, (data_max * 1.15 / step).ceil().max(1.0) * step)
    };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |t: f64| LEFT + t / x_max * pw;
    let y = |v: f64| TOP + ph - v / y_max * ph;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n",
        escape(&c.title)
    );
    s.push_str(&format!(
        "<text x=\"{LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        escape(&c.title)
    ));
    // Fault windows first, so data is drawn over them; their labels last, on top,
    // staggered when windows overlap.
    let mut labels = String::new();
    for (i, b) in c.bands.iter().enumerate() {
        let (x0, x1) = (x(b.start.clamp(0.0, x_max)), x(b.end.clamp(0.0, x_max)));
        s.push_str(&format!(
            "<rect class=\"fault\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{ph}\" fill=\"#f5a623\" fill-opacity=\"0.22\" stroke=\"#d48806\" stroke-dasharray=\"3,2\"><title>{}</title></rect>\n",
            (x1 - x0).max(1.0),
            escape(&b.label)
        ));
        labels.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#8a5300\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>\n",
            x0 + 3.0,
            TOP + 13.0 + (i % 3) as f64 * 13.0,
            escape(&b.label)
        ));
    }
    // Axes, grid and ticks.
    let mut v = 0.0;
    while v <= y_max + y_step / 2.0 {
        let yy = y(v);
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e3e3e3\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            fmt(v)
        ));
        v += y_step;
    }
    let x_step = nice_step(x_max, 10.0).max(1.0);
    let mut t = 0.0;
    while t <= x_max + 1e-9 {
        let xx = x(t);
        s.push_str(&format!(
            "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#444\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            TOP + ph,
            TOP + ph + 5.0,
            TOP + ph + 18.0,
            fmt(t)
        ));
        t += x_step;
    }
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#444\"/><line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\n",
        TOP + ph,
        TOP + ph,
        W - RIGHT,
        TOP + ph
    ));
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds since load start</text>\n",
        LEFT + pw / 2.0,
        H - 6.0
    ));
    s.push_str(&format!(
        "<text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        TOP + ph / 2.0,
        escape(&c.y_label)
    ));
    if let Some(bars) = &c.bars {
        let bw = (pw / x_max * 0.8).max(1.0);
        for (i, v) in bars.values.iter().enumerate() {
            if *v > 0.0 {
                s.push_str(&format!(
                    "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}s: {}</title></rect>\n",
                    x(i as f64) + (pw / x_max - bw) / 2.0,
                    y(*v),
                    y(0.0) - y(*v),
                    bars.color,
                    i,
                    fmt(*v)
                ));
            }
        }
    }
    for line in &c.lines {
        let points: Vec<String> = line
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i as f64 + 0.5), y(*v)))
            .collect();
        if points.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n",
            line.color,
            if line.dashed {
                " stroke-dasharray=\"6,4\""
            } else {
                ""
            },
            points.join(" ")
        ));
    }
    s.push_str(&labels);
    // Legend, top right.
    let mut lx = W - RIGHT;
    for series in c.lines.iter().chain(c.bars.iter()).rev() {
        let width = 28.0 + series.name.len() as f64 * 6.5;
        lx -= width;
        s.push_str(&format!(
            "<rect x=\"{lx:.1}\" y=\"10\" width=\"14\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"19\">{}</text>\n",
            series.color,
            lx + 18.0,
            escape(&series.name)
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(50.0, 5.0), 10.0);
        assert_eq!(nice_step(7.0, 5.0), 2.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }
}
