//! Errors in scenario files: every one names the file, line, column, field and the fix.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with a scenario file that the user must fix (exit code 2).
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: field `{}`: {}",
            self.file.display(),
            self.line,
            self.column,
            self.field,
            self.problem
        )?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// Builds errors for one source file, turning TOML paths into line and column.
pub(crate) struct Locator<'a> {
    file: &'a Path,
    source: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(file: &'a Path, source: &'a str) -> Self {
        Self {
            file,
            source,
            doc: toml_edit::ImDocument::parse(source).ok(),
        }
    }

    /// A file name as written in the scenario: relative names are read from the
    /// scenario file's own directory, so a scenario works from any working directory.
    pub(crate) fn path_beside(&self, name: &str) -> std::path::PathBuf {
        let p = Path::new(name);
        match self.file.parent() {
            Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// An error at `path` (e.g. `workload.rate` or `faults[1].start`).
    pub(crate) fn error(
        &self,
        path: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ScenarioError {
        let offset = self.offset_of(path).unwrap_or(0);
        let (line, column) = line_col(self.source, offset);
        ScenarioError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: path.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// An error at a byte offset (used for TOML syntax and type errors).
    pub(crate) fn error_at(
        &self,
        offset: usize,
        field: &str,
        problem: &str,
        fix: &str,
    ) -> ScenarioError {
        let (line, column) = line_col(self.source, offset);
        ScenarioError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            problem: problem.to_string(),
            fix: fix.to_string(),
        }
    }

    /// The offset of the deepest part of `path` that exists in the document, so a
    /// missing key points at its table.
    fn offset_of(&self, path: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut item: &toml_edit::Item = doc.as_item();
        for part in split_path(path) {
            let next = match part {
                PathPart::Key(key) => match item {
                    toml_edit::Item::Table(t) => t.get_key_value(key).map(|(k, v)| {
                        best = k.span().map(|s| s.start).or(best);
                        v
                    }),
                    toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                        t.get_key_value(key).map(|(k, v)| {
                            best = k.span().map(|s| s.start).or(best);
                            v
                        })
                    }
                    _ => None,
                },
                PathPart::Index(i) => item.get(i).inspect(|t| {
                    if let Some(span) = t.as_table().and_then(|t| t.span()) {
                        best = Some(span.start);
                    }
                }),
            };
            match next {
                Some(n) => item = n,
                None => break,
            }
        }
        best
    }
}

enum PathPart<'p> {
    Key(&'p str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<PathPart<'_>> {
    let mut parts = Vec::new();
    for segment in path.split('.') {
        match segment.find('[') {
            Some(open) => {
                parts.push(PathPart::Key(&segment[..open]));
                let index = segment[open + 1..].trim_end_matches(']');
                if let Ok(i) = index.parse() {
                    parts.push(PathPart::Index(i));
                }
            }
            None => parts.push(PathPart::Key(segment)),
        }
    }
    parts
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}
