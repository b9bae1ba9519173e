//! ISO 8601 durations (`PT4H`, `PT1H30M`): parsing never panics, and what parses prints back the
//! same way.
#![no_main]

use hotpatch_domain::payload::IsoDuration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(d) = s.parse::<IsoDuration>() {
        let again: IsoDuration = d.to_string().parse().expect("a printed duration parses");
        assert_eq!(again, d);
    }
});
