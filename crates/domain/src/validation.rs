//! Field-level validation of machine specs, beyond what their types already guarantee.

use serde::Serialize;
use utoipa::ToSchema;

use crate::machine::MachineSpec;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `labels.env` or `scale_set.name`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Longest machine name (a DNS name's limit).
pub const MAX_NAME_LEN: usize = 253;
/// Most labels a machine may carry.
pub const MAX_LABELS: usize = 64;

impl MachineSpec {
    /// Every field error of the spec; empty when it is valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            errors.push(FieldError::new("name", "must not be empty"));
        } else if chars(&self.name) > MAX_NAME_LEN {
            errors.push(FieldError::new("name", format!("must be at most {MAX_NAME_LEN} characters")));
        } else if name != self.name || has_control(&self.name) {
            errors.push(FieldError::new(
                "name",
                "must not start or end with spaces or contain control or invisible formatting characters",
            ));
        }
        if !is_identifier(&self.region, 64) {
            errors.push(FieldError::new(
                "region",
                "must be 1–64 lower-case letters, digits or dashes, e.g. uksouth",
            ));
        }
        for (field, value) in
            [("availability_zone", &self.availability_zone), ("availability_set", &self.availability_set)]
        {
            if let Some(v) = value {
                if v.trim().is_empty() || chars(v) > 128 || has_control(v) {
                    errors
                        .push(FieldError::new(field, "must be 1–128 characters, without control characters"));
                }
            }
        }
        if let Some(ud) = self.update_domain {
            if !(0..20).contains(&ud) {
                errors.push(FieldError::new("update_domain", "must be between 0 and 19"));
            }
        }
        if let Some(fd) = self.fault_domain {
            if !(0..3).contains(&fd) {
                errors.push(FieldError::new("fault_domain", "must be between 0 and 2"));
            }
        }
        if let Some(ss) = &self.scale_set {
            if ss.name.trim().is_empty() || chars(&ss.name) > 128 || has_control(&ss.name) {
                errors.push(FieldError::new(
                    "scale_set.name",
                    "must be 1–128 characters, without control characters",
                ));
            }
        }
        if let Some(img) = &self.image {
            for (field, v) in
                [("image.publisher", &img.publisher), ("image.offer", &img.offer), ("image.sku", &img.sku)]
            {
                if v.trim().is_empty() || chars(v) > 256 || has_control(v) {
                    errors
                        .push(FieldError::new(field, "must be 1–256 characters, without control characters"));
                }
            }
        }
        if self.labels.len() > MAX_LABELS {
            errors.push(FieldError::new("labels", format!("at most {MAX_LABELS} labels")));
        }
        for (k, v) in &self.labels {
            if !is_label_key(k) {
                errors.push(FieldError::new(
                    format!("labels.{k}"),
                    "label keys are 1–63 letters, digits, '.', '_', '-' or '/' (no ':')",
                ));
            }
            if !is_label_value(v) {
                errors.push(FieldError::new(
                    format!("labels.{k}"),
                    "label values are at most 256 characters, without control characters",
                ));
            }
        }
        errors
    }
}

/// Length in characters, the unit the messages (and PostgreSQL's `varchar(n)`) use;
/// `str::len` counts UTF-8 bytes and would reject non-Latin names at half the limit.
fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Control characters (NUL above all) have no place in names, and PostgreSQL refuses
/// NUL in text outright. Invisible formatting characters count as control here: bidirectional
/// overrides and isolates (U+202E shows `exe.txt` for `txt.exe`) and zero-width characters
/// make two names that look the same differ, or a name read differently than it is.
pub fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || is_invisible_format(c))
}

/// Bidirectional marks, embeddings, overrides and isolates, zero-width spaces and joiners,
/// the word joiner and the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Label values: free text up to 256 characters, no control characters.
pub fn is_label_value(s: &str) -> bool {
    chars(s) <= 256 && !has_control(s)
}

/// Region-like identifiers: lower-case ASCII letters, digits and dashes, not starting with a dash
/// (the database's `region_name_format` check: a leading dash passed here and failed there, a 500).
pub fn is_identifier(s: &str, max: usize) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.len() <= max
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Label keys: no `:` because `label=k:v` filters split on the first one.
pub fn is_label_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_start_with_a_letter_or_digit_as_the_database_requires() {
        assert!(is_identifier("westeurope", 64) && is_identifier("0-a", 64));
        assert!(!is_identifier("-i0", 64) && !is_identifier("", 64) && !is_identifier("A", 64));
    }

    #[test]
    fn names_refuse_control_characters() {
        for s in ["a\0b", "a\nb", "tab\there", "\u{7f}"] {
            assert!(has_control(s), "{s:?}");
        }
    }

    #[test]
    fn names_refuse_bidi_overrides_and_zero_width_characters() {
        for s in [
            "web\u{202E}txt.exe",
            "a\u{200B}b",
            "a\u{200D}b",
            "\u{FEFF}web",
            "a\u{2066}b\u{2069}",
            "a\u{200F}",
        ] {
            assert!(has_control(s), "{s:?}");
        }
    }

    #[test]
    fn ordinary_names_in_any_script_pass() {
        for s in ["web-01", "Serveur café", "サーバー", "сервер 1", "خادم", "db (primary)"] {
            assert!(!has_control(s), "{s:?}");
        }
    }
}
