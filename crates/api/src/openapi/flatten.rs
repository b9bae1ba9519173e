//! `#[serde(flatten)]` as one object schema.
//!
//! utoipa describes a flattened field as `allOf: [{$ref: Inner}, {own fields}]`. When `Inner` is a
//! request schema that refuses unknown fields (`additionalProperties: false`, from
//! `deny_unknown_fields`), no response validates against that `allOf`: each part sees the other's
//! fields as unknown. The answer's real shape is one object with the fields of every part, so
//! that is what the document says; the request schema keeps its `additionalProperties: false`.

use serde_json::{Map, Value};
use utoipa::openapi::{OpenApi as Document, RefOr, Schema};

/// Replaces every component schema that is an `allOf` of objects by the one object they make.
pub fn flatten_all_of(doc: &mut Document) {
    let Some(components) = doc.components.as_mut() else { return };
    let mut schemas: Map<String, Value> = components
        .schemas
        .iter()
        .filter_map(|(name, s)| Some((name.clone(), serde_json::to_value(s).ok()?)))
        .collect();
    let names: Vec<String> = schemas.keys().cloned().collect();
    for name in names {
        if let Some(flat) = flattened(&schemas, &name, 0) {
            if let Ok(schema) = serde_json::from_value::<RefOr<Schema>>(flat.clone()) {
                components.schemas.insert(name.clone(), schema);
                schemas.insert(name, flat);
            }
        }
    }
}

/// The object `name` describes when it is an `allOf` whose parts all resolve to objects.
fn flattened(schemas: &Map<String, Value>, name: &str, depth: usize) -> Option<Value> {
    let schema = schemas.get(name)?;
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
    Some(Value::Object(flat))
}

/// A part of an `allOf`: inline, or a reference to a component (itself flattened if need be).
fn resolve(schemas: &Map<String, Value>, part: &Value, depth: usize) -> Option<Value> {
    let Some(reference) = part.get("$ref").and_then(Value::as_str) else { return Some(part.clone()) };
    let name = reference.strip_prefix("#/components/schemas/")?;
    // Nesting is shallow (a list item flattening a view flattening a spec); the bound only
    // guards against a cycle.
    if depth > 8 {
        return None;
    }
    flattened(schemas, name, depth + 1).or_else(|| schemas.get(name).cloned())
}
