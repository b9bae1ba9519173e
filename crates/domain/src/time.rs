//! Instants and dates on the wire: RFC 3339, years 0001–9999 only.
//!
//! chrono reads and writes years outside 0000–9999 with a sign (`+10000-01-01T00:00:00Z`), which
//! is not RFC 3339: a client would get back a date it cannot parse. Every instant a client sends
//! goes through here, so what the API answers is always RFC 3339. A plain date (`2025-01-18`) is
//! accepted where an instant is expected and means its midnight UTC.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

/// Why a value is not an instant or a date this API accepts.
pub const EXPECTED: &str =
    "must be an RFC 3339 instant (e.g. 2025-01-18T01:00:00Z) or a date, years 0001–9999";

fn year_in_range(year: i32) -> bool {
    (1..=9999).contains(&year)
}

/// An RFC 3339 instant or a date (midnight UTC), its UTC year within 0001–9999.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let at = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => parse_date(s)?.and_hms_opt(0, 0, 0)?.and_utc(),
    };
    year_in_range(at.year()).then_some(at)
}

/// A `YYYY-MM-DD` date, its year within 0001–9999.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    // Exactly four digits of year: chrono alone also takes signed and longer years.
    if s.len() != 10 || !s.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().filter(|d| year_in_range(d.year()))
}

/// `#[serde(deserialize_with = "hotpatch_domain::time::instant")]`: see [`parse_instant`].
pub fn instant<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = std::borrow::Cow::<str>::deserialize(d)?;
    parse_instant(&s).ok_or_else(|| serde::de::Error::custom(EXPECTED))
}

/// As [`instant`], for an optional field (`null` or absent: `None`; needs `#[serde(default)]`).
pub fn optional_instant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<std::borrow::Cow<str>>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_instant(&s).map(Some).ok_or_else(|| serde::de::Error::custom(EXPECTED)),
    }
}

/// `#[serde(deserialize_with = "hotpatch_domain::time::date")]`: see [`parse_date`].
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let s = std::borrow::Cow::<str>::deserialize(d)?;
    parse_date(&s).ok_or_else(|| serde::de::Error::custom("must be a date YYYY-MM-DD, years 0001–9999"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3339_instants_and_plain_dates_are_accepted() {
        let t = parse_instant("2025-01-18T02:00:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-01-18T01:00:00+00:00");
        assert_eq!(parse_instant("2025-01-18").unwrap().to_rfc3339(), "2025-01-18T00:00:00+00:00");
        assert!(parse_instant("9999-12-31T23:59:59Z").is_some());
        assert!(parse_instant("0001-01-01T00:00:00Z").is_some());
    }

    #[test]
    fn years_outside_0001_to_9999_are_refused() {
        for s in [
            "+10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "0000-06-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "+10000-01-01",
            "10000-01-01",
            "0000-01-01",
        ] {
            assert!(parse_instant(s).is_none(), "{s}");
        }
    }

    #[test]
    fn dates_have_four_digit_years() {
        assert!(parse_date("2025-02-28").is_some());
        for s in ["+2025-02-28", "02025-02-28", "2025-02-30", "25-02-28", "0000-01-01"] {
            assert!(parse_date(s).is_none(), "{s}");
        }
    }

    #[test]
    fn fields_refuse_what_the_api_could_not_answer_in_rfc_3339() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "instant")]
            at: DateTime<Utc>,
            #[serde(default, deserialize_with = "optional_instant")]
            until: Option<DateTime<Utc>>,
        }
        let ok: T = serde_json::from_str(r#"{"at": "2025-01-01T00:00:00Z", "until": null}"#).unwrap();
        assert!(ok.until.is_none());
        assert_eq!(ok.at.year(), 2025);
        assert!(serde_json::from_str::<T>(r#"{"at": "+10000-01-01T00:00:00Z"}"#).is_err());
        assert!(serde_json::from_str::<T>(
            r#"{"at": "2025-01-01T00:00:00Z", "until": "+99999-01-01T00:00:00Z"}"#
        )
        .is_err());
    }
}
