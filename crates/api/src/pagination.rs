//! Cursor pagination shared by every list: `?limit=` (default 100, max 1000) and an opaque `?cursor=`.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page size.
pub const MAX_LIMIT: i64 = 1000;

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Parses `?limit=`.
pub fn parse_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else { return Ok(DEFAULT_LIMIT) };
    match raw.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_param(
            "limit",
            format!("must be an integer from 1 to {MAX_LIMIT}, got '{raw}'"),
        )),
    }
}

/// Parses `?cursor=` (the id of the last item of the previous page, encoded).
pub fn parse_cursor(raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    hotpatch_domain::cursor::decode(raw)
        .map(Some)
        .ok_or_else(|| ApiError::bad_param("cursor", "is not a cursor this API returned"))
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says whether there is more.
pub fn page<R, T>(mut rows: Vec<R>, limit: i64, id: impl Fn(&R) -> Uuid, view: impl Fn(R) -> T) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more { rows.last().map(|r| hotpatch_domain::cursor::encode(id(r))) } else { None };
    Page { items: rows.into_iter().map(view).collect(), next_cursor }
}

/// `limit` and `cursor` from query pairs, rejecting repeats.
#[derive(Debug, Clone, Copy)]
pub struct PageParams {
    /// Page size.
    pub limit: i64,
    /// Resume after this id.
    pub after: Option<Uuid>,
}

impl PageParams {
    /// Reads the paging parameters from a query string. Parameters other than these
    /// and the list's own `filters` are refused, so that a mistyped filter never
    /// silently returns everything.
    pub fn from_query(raw: Option<&str>, filters: &[&str]) -> Result<Self, ApiError> {
        let mut limit = None;
        let mut cursor = None;
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "limit" => limit = Some(v.into_owned()),
                "cursor" => cursor = Some(v.into_owned()),
                k if filters.contains(&k) => {}
                k => {
                    let known =
                        filters.iter().chain(&["limit", "cursor"]).copied().collect::<Vec<_>>().join(", ");
                    return Err(ApiError::bad_param(
                        &k.escape_debug().to_string(),
                        format!("unknown query parameter (known: {known})"),
                    ));
                }
            }
        }
        Ok(PageParams { limit: parse_limit(limit.as_deref())?, after: parse_cursor(cursor.as_deref())? })
    }
}
