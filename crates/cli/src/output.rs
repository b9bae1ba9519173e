//! What commands print on stdout: the server's JSON (pretty) with `--output json`, or aligned
//! tables and `key  value` blocks for people. Progress and warnings go to stderr, never here.

use std::io::Write;

use serde_json::Value;

use crate::error::CliError;

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The server's JSON, pretty-printed (one document per command).
    Json,
}

/// Standard output in the chosen format.
pub struct Out {
    format: Format,
    stdout: Box<dyn Write>,
}

impl Out {
    /// Output to this process's stdout.
    pub fn stdout(format: Format) -> Out {
        Out { format, stdout: Box::new(std::io::stdout()) }
    }

    /// Output to any writer (tests).
    pub fn to_writer(format: Format, writer: Box<dyn Write>) -> Out {
        Out { format, stdout: writer }
    }

    /// The chosen format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the answer is printed as JSON.
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints `value` as pretty JSON.
    pub fn json(&mut self, value: &Value) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Write(e.into()))?;
        writeln!(self.stdout, "{text}")?;
        Ok(())
    }

    /// Prints one line of text.
    pub fn line(&mut self, text: &str) -> Result<(), CliError> {
        writeln!(self.stdout, "{text}")?;
        Ok(())
    }

    /// Prints a remark for people on stderr (hints, warnings, progress), never on stdout, so
    /// stdout stays the answer (valid JSON with `--output json`).
    pub fn note(&self, text: &str) {
        eprintln!("{text}");
    }

    /// Prints raw text as it is (e.g. an iCalendar).
    pub fn raw(&mut self, text: &str) -> Result<(), CliError> {
        self.stdout.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            writeln!(self.stdout)?;
        }
        Ok(())
    }

    /// Prints rows under upper-case headers, each column as wide as its widest cell, two spaces
    /// apart, without borders or trailing blanks: easy to read, and to cut with `awk`. Drawn by
    /// `comfy-table` (widths by display width, multi-line cells), never wrapped to the terminal:
    /// a pipeline's log keeps every row on one line.
    pub fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        table.set_header(headers.iter().map(|h| h.to_uppercase()));
        for row in rows {
            table.add_row(row);
        }
        let last = headers.len().saturating_sub(1);
        for (i, column) in table.column_iter_mut().enumerate() {
            column.set_padding(if i == last { (0, 0) } else { (0, 2) });
        }
        for line in table.lines() {
            writeln!(self.stdout, "{}", line.trim_end())?;
        }
        Ok(())
    }

    /// The writer behind stdout (for output a library writes, e.g. shell completions).
    pub fn writer(&mut self) -> &mut dyn Write {
        &mut *self.stdout
    }

    /// Flushes stdout (a stream's lines must reach a pipe as they come).
    pub fn flush(&mut self) -> Result<(), CliError> {
        self.stdout.flush()?;
        Ok(())
    }

    /// Prints `key  value` lines, keys aligned.
    pub fn fields(&mut self, pairs: &[(&str, String)]) -> Result<(), CliError> {
        let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        for (key, value) in pairs {
            writeln!(self.stdout, "{key:<width$}  {value}")?;
        }
        Ok(())
    }
}

/// The value at a JSON pointer (`/hotpatch/status`) as display text: strings as they are,
/// arrays joined with commas, objects as `k=v` pairs, `-` for null or missing.
pub fn text(value: &Value, pointer: &str) -> String {
    display(value.pointer(pointer).unwrap_or(&Value::Null))
}

/// A JSON value as display text (see [`text`]).
pub fn display(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(","),
        Value::Object(map) if map.is_empty() => "-".to_owned(),
        Value::Object(map) => {
            map.iter().map(|(k, v)| format!("{k}={}", display(v))).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    }
}

/// The `items` array of a list answer (empty when absent).
pub fn items(page: &Value) -> &[Value] {
    page.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn tables_align_columns_under_upper_case_headers() {
        let buf = Buffer::default();
        let mut out = Out::to_writer(Format::Table, Box::new(buf.clone()));
        out.table(&["id", "name"], &[vec!["1".into(), "web-1".into()], vec!["22".into(), "x".into()]])
            .unwrap();
        let printed = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(printed, "ID  NAME\n1   web-1\n22  x\n");
    }

    #[test]
    fn columns_are_as_wide_as_their_text_shows_not_as_its_bytes() {
        let buf = Buffer::default();
        let mut out = Out::to_writer(Format::Table, Box::new(buf.clone()));
        out.table(&["region", "n"], &[vec!["zürich".into(), "1".into()], vec!["x".into(), "22".into()]])
            .unwrap();
        let printed = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(printed, "REGION  N\nzürich  1\nx       22\n");
    }

    #[test]
    fn values_display_compactly() {
        let v = json!({"a": null, "b": ["x", "y"], "c": {"env": "prod"}, "d": 3, "e": true, "f": []});
        assert_eq!(text(&v, "/a"), "-");
        assert_eq!(text(&v, "/missing"), "-");
        assert_eq!(text(&v, "/b"), "x,y");
        assert_eq!(text(&v, "/c"), "env=prod");
        assert_eq!(text(&v, "/d"), "3");
        assert_eq!(text(&v, "/e"), "true");
        assert_eq!(text(&v, "/f"), "-");
    }
}
