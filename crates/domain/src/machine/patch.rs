//! A partial update of a machine (`PATCH /v1/machines/{id}`) and its application to a spec.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::ToSchema;

use super::*;

/// A partial update of a machine (`PATCH /v1/machines/{id}`): absent fields keep their
/// value, `null` clears an optional one and is rejected for a required one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachinePatch {
    /// New name.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 253,
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]([^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff])?$"
    )]
    pub name: Option<String>,
    /// New platform.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub platform: Option<Platform>,
    /// New OS release.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub os: Option<OsVersion>,
    /// New image, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<Image>)]
    pub image: Option<Option<Image>>,
    /// New edition, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<Edition>)]
    pub edition: Option<Option<Edition>>,
    /// New OS build, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<String>, pattern = "^[0-9]{1,9}\\.[0-9]{1,9}$")]
    pub os_build: Option<Option<OsBuild>>,
    /// New VBS flag, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<bool>)]
    pub vbs_enabled: Option<Option<bool>>,
    /// New region.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub region: Option<String>,
    /// New availability zone, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$")]
    pub availability_zone: Option<Option<String>>,
    /// New availability set, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$")]
    pub availability_set: Option<Option<String>>,
    /// New update domain, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 19)]
    pub update_domain: Option<Option<i32>>,
    /// New fault domain, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 2)]
    pub fault_domain: Option<Option<i32>>,
    /// New scale set, or `null` to clear.
    #[serde(default, deserialize_with = "crate::object_only::double_option")]
    #[schema(value_type = Option<ScaleSet>)]
    pub scale_set: Option<Option<ScaleSet>>,
    /// New time zone.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false)]
    pub timezone: Option<Timezone>,
    /// Turn hotpatch on or off.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub hotpatch_enabled: Option<bool>,
    /// New patch orchestration.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub patch_orchestration: Option<PatchOrchestration>,
    /// Replaces all labels.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// For a required field: absent is `None` (through `#[serde(default)]`), a value is
/// `Some`, and `null` is an error, since a required field cannot be cleared. (A plain
/// `Option` would read `null` as absent and silently ignore the request.)
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl MachineSpec {
    /// The spec after a partial update.
    pub fn patched(mut self, p: MachinePatch) -> MachineSpec {
        fn set<T>(field: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *field = v;
            }
        }
        set(&mut self.name, p.name);
        set(&mut self.platform, p.platform);
        set(&mut self.os, p.os);
        set(&mut self.image, p.image);
        set(&mut self.edition, p.edition);
        set(&mut self.os_build, p.os_build);
        set(&mut self.vbs_enabled, p.vbs_enabled);
        set(&mut self.region, p.region);
        set(&mut self.availability_zone, p.availability_zone);
        set(&mut self.availability_set, p.availability_set);
        set(&mut self.update_domain, p.update_domain);
        set(&mut self.fault_domain, p.fault_domain);
        set(&mut self.scale_set, p.scale_set);
        set(&mut self.timezone, p.timezone);
        set(&mut self.hotpatch_enabled, p.hotpatch_enabled);
        set(&mut self.patch_orchestration, p.patch_orchestration);
        set(&mut self.labels, p.labels);
        self
    }
}
