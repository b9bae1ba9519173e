//! Page cursors: the id of the last item of a page, URL-safe base64 without padding. Opaque to
//! clients; anything else they send is refused, never guessed at.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use uuid::Uuid;

/// The cursor after the item `id`.
pub fn encode(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The id a cursor stands for; `None` for anything [`encode`] did not make.
pub fn decode(cursor: &str) -> Option<Uuid> {
    URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|b| Uuid::from_slice(&b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_to_its_id_and_nothing_else_decodes() {
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(id)), Some(id));
        for bad in ["", "x", "not a cursor", "AAAA", &format!("{}=", encode(id)), &encode(id)[1..]] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
