//! `machines import`'s input: a JSON array of machines or a CSV document, read into the JSON array
//! `POST /v1/machines/import` takes.

use std::path::Path;

use serde_json::{Map, Value};

use super::ImportFormat;
use crate::commands::{parse_label, read_file};
use crate::error::CliError;

/// The machines of an import file, as the JSON array the API takes.
pub fn read_machines(file: &Path, format: Option<ImportFormat>) -> Result<Value, CliError> {
    let format = format.unwrap_or_else(|| {
        let csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if csv {
            ImportFormat::Csv
        } else {
            ImportFormat::Json
        }
    });
    let content = read_file(file)?;
    let machines = match format {
        ImportFormat::Json => serde_json::from_str::<Value>(&content)
            .map_err(|e| CliError::Input(format!("{} is not valid JSON: {e}", file.display())))?,
        ImportFormat::Csv => {
            machines_from_csv(&content).map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?
        }
    };
    if !machines.is_array() {
        return Err(CliError::Input(format!("{} must hold an array of machines", file.display())));
    }
    Ok(machines)
}

/// Columns holding booleans.
const BOOL_FIELDS: &[&str] = &["hotpatch_enabled", "vbs_enabled"];
/// Columns holding integers.
const INT_FIELDS: &[&str] = &["update_domain", "fault_domain"];

/// The machines of a CSV document with a header line, as a JSON array (one object per row).
pub fn machines_from_csv(content: &str) -> Result<Value, String> {
    let mut records = parse_csv(content)?.into_iter();
    let Some((_, header)) = records.next() else { return Err("empty file: no header line".to_owned()) };
    let columns: Vec<Vec<String>> = header.iter().map(|h| column_path(h)).collect();
    if columns.iter().any(Vec::is_empty) {
        return Err("line 1: the header has an empty column name".to_owned());
    }
    let mut machines = Vec::new();
    for (line, row) in records {
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if row.len() > columns.len() {
            return Err(format!("line {line}: {} cells for {} columns", row.len(), columns.len()));
        }
        let mut machine = Map::new();
        for (path, cell) in columns.iter().zip(&row) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let value =
                cell_value(path, cell).map_err(|e| format!("line {line}, column {}: {e}", path.join(".")))?;
            insert(&mut machine, path, value).map_err(|e| format!("line {line}: {e}"))?;
        }
        machines.push(Value::Object(machine));
    }
    if machines.is_empty() {
        return Err("no machine rows under the header".to_owned());
    }
    Ok(Value::Array(machines))
}

/// A header cell as a field path: `image.sku` → `["image", "sku"]`; `image_sku`-style aliases of
/// the nested fields are accepted too.
fn column_path(header: &str) -> Vec<String> {
    let name = header.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
    for (prefix, parent) in [("image_", "image"), ("scale_set_", "scale_set"), ("label_", "labels")] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if parent != "scale_set" || matches!(rest, "name" | "orchestration_mode") {
                return vec![parent.to_owned(), rest.to_owned()];
            }
        }
    }
    if name.is_empty() {
        return Vec::new();
    }
    name.split('.').map(str::to_owned).collect()
}

/// A cell as the JSON value its column takes.
fn cell_value(path: &[String], cell: &str) -> Result<Value, String> {
    let leaf = path.last().map(String::as_str).unwrap_or_default();
    if path.len() == 1 && BOOL_FIELDS.contains(&leaf) {
        return match cell.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("'{cell}' is not true or false")),
        };
    }
    if path.len() == 1 && INT_FIELDS.contains(&leaf) {
        return cell.parse::<i64>().map(Value::from).map_err(|_| format!("'{cell}' is not a whole number"));
    }
    if path.len() == 1 && leaf == "labels" {
        let mut labels = Map::new();
        for pair in cell.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = parse_label(pair)?;
            labels.insert(k, Value::String(v));
        }
        return Ok(Value::Object(labels));
    }
    Ok(Value::String(cell.to_owned()))
}

/// Sets `value` at `path` in `object`, creating the objects on the way; `labels` given both as a
/// `labels` column and `labels.<key>` columns are merged.
fn insert(object: &mut Map<String, Value>, path: &[String], value: Value) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else { return Ok(()) };
    if rest.is_empty() {
        match (object.get_mut(first), value) {
            (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
            (Some(_), _) => return Err(format!("column {first} is given twice")),
            (None, value) => {
                object.insert(first.clone(), value);
            }
        }
        return Ok(());
    }
    let child = object.entry(first.clone()).or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(map) => insert(map, rest, value),
        _ => Err(format!("column {first} is both a value and an object")),
    }
}

/// RFC 4180 records (quoted cells may hold commas, `""` and line breaks), each with the line it
/// starts on (1-based).
pub fn parse_csv(content: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut line = 1;
    let mut start = 1;
    let mut quoted = false;
    let mut chars = content.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    cell.push(c);
                }
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.trim().is_empty() => {
                cell.clear();
                quoted = true;
            }
            ',' => record.push(std::mem::take(&mut cell)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut cell));
                records.push((start, std::mem::take(&mut record)));
                line += 1;
                start = line;
            }
            _ => cell.push(c),
        }
    }
    if quoted {
        return Err(format!("line {start}: a quoted cell is not closed"));
    }
    if !cell.is_empty() || !record.is_empty() {
        record.push(cell);
        records.push((start, record));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn csv_cells_may_be_quoted_with_commas_quotes_and_line_breaks() {
        let records = parse_csv("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\"multi\nline\",z").unwrap();
        assert_eq!(
            records,
            vec![
                (1, vec!["a".to_owned(), "b".to_owned()]),
                (2, vec!["x, y".to_owned(), "say \"hi\"".to_owned()]),
                (3, vec!["multi\nline".to_owned(), "z".to_owned()]),
            ]
        );
        assert!(parse_csv("a\n\"open").is_err());
    }

    #[test]
    fn csv_rows_become_machines_with_nested_and_typed_fields() {
        let csv = "name,platform,os,image.publisher,image_offer,image.sku,region,timezone,hotpatch_enabled,\
                   update_domain,labels,labels.team\n\
                   web-1,azure_vm,windows_server_2022,MicrosoftWindowsServer,WindowsServer,\
                   2022-datacenter-azure-edition-hotpatch,westeurope,Europe/Berlin,yes,3,env=prod;tier=web,blue\n\
                   \n\
                   arc-1,arc_connected,windows_server_2025,,,,uksouth,UTC,false,,,\n";
        let machines = machines_from_csv(csv).unwrap();
        assert_eq!(
            machines,
            json!([
                {
                    "name": "web-1", "platform": "azure_vm", "os": "windows_server_2022",
                    "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                              "sku": "2022-datacenter-azure-edition-hotpatch"},
                    "region": "westeurope", "timezone": "Europe/Berlin", "hotpatch_enabled": true,
                    "update_domain": 3, "labels": {"env": "prod", "tier": "web", "team": "blue"}
                },
                {
                    "name": "arc-1", "platform": "arc_connected", "os": "windows_server_2025",
                    "region": "uksouth", "timezone": "UTC", "hotpatch_enabled": false
                }
            ])
        );
    }

    #[test]
    fn the_sample_fleet_csv_reads_as_the_sample_fleet_json() {
        let csv = machines_from_csv(include_str!("../../../../../deploy/fleet/fleet.csv")).unwrap();
        let json: Value =
            serde_json::from_str(include_str!("../../../../../deploy/fleet/fleet.json")).unwrap();
        assert_eq!(csv, json);
    }

    #[test]
    fn a_bad_csv_cell_names_its_line_and_column() {
        let err = machines_from_csv("name,hotpatch_enabled\nweb-1,maybe\n").unwrap_err();
        assert_eq!(err, "line 2, column hotpatch_enabled: 'maybe' is not true or false");
        let err = machines_from_csv("name,update_domain\nweb-1,x\n").unwrap_err();
        assert!(err.contains("line 2, column update_domain"), "{err}");
        assert!(machines_from_csv("name\n").is_err());
        assert!(machines_from_csv("").is_err());
    }
}
