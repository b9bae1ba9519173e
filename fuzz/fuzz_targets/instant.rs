//! Instants and dates (`?at=`, `?from=`, and every date in a body): parsing never panics, and
//! what parses is within years 0001–9999 and prints as RFC 3339 that parses back the same.
#![no_main]

use chrono::{Datelike, SecondsFormat};
use hotpatch_domain::time::{parse_date, parse_instant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(t) = parse_instant(s) {
        assert!((1..=9999).contains(&t.year()), "{t:?}");
        let printed = t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        assert_eq!(parse_instant(&printed), Some(t), "{printed}");
    }
    if let Some(d) = parse_date(s) {
        assert_eq!(parse_date(&d.format("%Y-%m-%d").to_string()), Some(d));
    }
});
