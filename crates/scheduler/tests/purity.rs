//! The scheduler is pure planning: it must not depend on a runtime, a database or a web framework.
#![allow(clippy::unwrap_used, missing_docs)]

#[test]
fn the_scheduler_depends_on_neither_tokio_nor_sqlx_nor_axum() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let manifest: String =
        manifest.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    for forbidden in ["tokio", "sqlx", "axum"] {
        assert!(!manifest.contains(forbidden), "crates/scheduler/Cargo.toml mentions {forbidden}");
    }
}
