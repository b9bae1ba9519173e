//! `#[serde(flatten)]` as one object schema.
//!
//! utoipa describes a flattened field as `allOf: [{$ref: Inner}, {own fields}]`. When `Inner` is a
//! request schema that refuses unknown fields (`additionalProperties: false`, from
//! `deny_unknown_fields`), no response validates against that `allOf`: each part sees the other's
//! fields as unknown. The answer's real shape is one object with the fields of every part, so
//! that is what the document says; the request schema keeps its `additionalProperties: false`.

use serde_json::{Map, Value};
use utoipa::openapi::OpenApi as Document;

/// Replaces every `allOf` of objects, wherever it is (components, generic pages' inlined items,
/// operations), by the one object its parts make.
pub fn flatten_all_of(doc: &mut Document) {
    let Ok(mut value) = serde_json::to_value(&*doc) else { return };
    let schemas =
        value.pointer("/components/schemas").and_then(Value::as_object).cloned().unwrap_or_default();
    rewrite(&schemas, &mut value, 0);
    match serde_json::from_value(value) {
        Ok(flat) => *doc = flat,
        Err(e) => tracing::error!(%e, "the flattened OpenAPI document does not read back; kept as it was"),
    }
}

/// Flattens `value` and everything below it.
fn rewrite(schemas: &Map<String, Value>, value: &mut Value, depth: usize) {
    match value {
        Value::Object(map) => {
            if let Some(flat) = flattened(schemas, map, depth) {
                *map = flat;
            }
            for v in map.values_mut() {
                rewrite(schemas, v, depth);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(schemas, v, depth)),
        _ => {}
    }
}

/// The object `schema` describes when it is an `allOf` whose parts all resolve to objects.
fn flattened(
    schemas: &Map<String, Value>,
    schema: &Map<String, Value>,
    depth: usize,
) -> Option<Map<String, Value>> {
    let parts = schema.get("allOf")?.as_array()?;
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    for part in parts {
        let object = resolve(schemas, part, depth)?;
        if object.get("type").and_then(Value::as_str) != Some("object") {
            return None;
        }
        if let Some(p) = object.get("properties").and_then(Value::as_object) {
            properties.extend(p.clone());
        }
        for r in object.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !required.contains(r) {
                required.push(r.clone());
            }
        }
    }
    let mut flat = Map::new();
    flat.insert("type".into(), "object".into());
    if let Some(description) = schema.get("description") {
        flat.insert("description".into(), description.clone());
    }
    flat.insert("required".into(), Value::Array(required));
    flat.insert("properties".into(), Value::Object(properties));
    Some(flat)
}

/// A part of an `allOf`: inline, or a reference to a component (itself flattened if need be).
fn resolve(schemas: &Map<String, Value>, part: &Value, depth: usize) -> Option<Map<String, Value>> {
    let Some(reference) = part.get("$ref").and_then(Value::as_str) else {
        let part = part.as_object()?;
        return Some(flattened(schemas, part, depth).unwrap_or_else(|| part.clone()));
    };
    let name = reference.strip_prefix("#/components/schemas/")?;
    // Nesting is shallow (a list item flattening a view flattening a spec); the bound only
    // guards against a cycle.
    if depth > 8 {
        return None;
    }
    let schema = schemas.get(name)?.as_object()?;
    Some(flattened(schemas, schema, depth + 1).unwrap_or_else(|| schema.clone()))
}
