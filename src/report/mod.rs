//! Reports: pure functions of result files, so any of them can be rebuilt later
//! from `results/`. One file per format; [`compare`] is the row model shared by
//! the multi-run formats.

pub mod capacity;
pub mod compare;
pub mod csv;
pub mod html;
pub mod interval;
pub mod jepsen;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod repeats;
pub mod svg;
pub mod table;

use std::io::IsTerminal;

/// Colour on stdout: only on a terminal, never when `NO_COLOR` is set and non-empty
/// (https://no-color.org).
pub fn color_enabled() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

/// Multi-run output formats of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

/// Renders a comparison in one format.
pub fn render(cmp: &compare::Comparison, format: Format, color: bool) -> String {
    match format {
        Format::Table => format!("{}\n", table::comparison(cmp, color)),
        Format::Markdown => markdown::comparison(cmp),
        Format::Csv => csv::comparison(cmp),
        Format::Json => json::comparison(cmp),
    }
}

#[cfg(test)]
mod tests;
