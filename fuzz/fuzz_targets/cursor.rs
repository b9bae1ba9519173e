//! Page cursors (`?cursor=`): decoding never panics, and a decoded cursor encodes back to itself.
#![no_main]

use hotpatch_domain::cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(id) = cursor::decode(s) {
        assert_eq!(cursor::decode(&cursor::encode(id)), Some(id));
    }
});
