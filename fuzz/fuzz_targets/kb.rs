//! KB numbers (`KB5034439`, `5034439`): parsing never panics, and what parses prints back the same.
#![no_main]

use hotpatch_domain::release::Kb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(kb) = s.parse::<Kb>() {
        let again: Kb = kb.to_string().parse().expect("a printed KB parses");
        assert_eq!(again, kb);
    }
});
