//! Request bodies name their fields: a JSON array must not fill a struct positionally.
//!
//! serde's derived structs accept a sequence of field values in declaration order, so
//! `["web-1", "azure_vm", …]` would register a machine. Deserializing through
//! [`ObjectOnly`] asks for a map instead, and a sequence is rejected with
//! "invalid type: sequence, expected …".

use serde::de::{Deserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde::Deserialize;

/// A deserializer that reads structs only from maps (JSON objects).
pub struct ObjectOnly<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// `#[serde(default, deserialize_with = "hotpatch_domain::object_only::double_option")]`:
/// distinguishes a field left out (`None`) from an explicit `null` (`Some(None)`) in a patch.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
