//! An agent's inventory (`POST /v1/agent/inventory`): JSON → inventory → the installed state it
//! implies against a small catalog. Nothing may panic.
#![no_main]

use hotpatch_domain::job::Inventory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(inventory) = serde_json::from_slice::<Inventory>(data) else { return };
    // What the service reads off an inventory before it stores it.
    let _ = serde_json::to_vec(&inventory).expect("an inventory serializes");
    for update in &inventory.available_updates {
        let _ = update.is_recommended();
    }
});
