//! Pulled values: the app value a CRM value of a pulling field (`direction = "both"` or
//! `"pull"`) is written back as. Pushing applies the transforms, then the status map; the way
//! back undoes them in the opposite order: the status map first ([`status_map::back`]), then each
//! transform from the last to the first ([`Transform::back`]). The invariant: for a CRM value the
//! forward chain can produce, pushing the pulled value gives that CRM value again, so a pulled
//! value never flips back and forth between the two sides.

use crate::config::FieldConfig;
use crate::status_map;
use crate::transform::Transform;

/// The app value `crm_value` of `field` comes back as, or a sentence naming the CRM property,
/// the value and what was expected when there is no way back.
pub fn value_back(field: &FieldConfig, crm_value: &str) -> Result<String, String> {
    let mut value = status_map::back(field, crm_value)?;
    // As in the forward direction, an item that does not read was reported by the config
    // validation and is skipped.
    let transforms: Vec<Transform> = field
        .transform
        .iter()
        .filter_map(|t| Transform::from_item(t).ok())
        .collect();
    for t in transforms.iter().rev() {
        value = t.back(&value).map_err(|why| {
            if value == crm_value {
                format!("`{}`: CRM value `{crm_value}` {why}", field.crm)
            } else {
                format!(
                    "`{}`: CRM value `{crm_value}` reads `{value}` before transform `{}`, which {why}",
                    field.crm,
                    t.name()
                )
            }
        })?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawConfig;
    use crate::mapping::{Row, map_one};

    /// The field `f` of a one-field sync, from its inline TOML table.
    fn field(table: &str) -> FieldConfig {
        let raw: RawConfig = toml::from_str(&format!(
            r#"
            source = {{ url = "sqlite://a.db" }}
            crm = {{ environment = "sandbox", kind = "hubspot", token_env = "T" }}
            [[sync]]
            name = "deals"
            table = "orders"
            object = "deals"
            [sync.fields]
            f = {table}
            "#
        ))
        .expect("test config parses");
        assert!(
            crate::config::validate::validate(&raw).is_empty(),
            "{:?}",
            crate::config::validate::validate(&raw)
        );
        raw.syncs[0].fields["f"].clone()
    }

    /// What the app value pushes as, through the real forward mapping.
    fn push(field: &FieldConfig, app: &str) -> Option<String> {
        let row: Row = [("f".to_string(), Some(app.to_string()))].into();
        map_one("f", field, &row)
    }

    #[test]
    fn a_date_comes_back_in_the_first_app_format() {
        let f = field(
            r#"{ crm = "closedate", direction = "both", transform = [{ date = ["%d.%m.%Y", "iso"] }] }"#,
        );
        assert_eq!(push(&f, "31.12.2024").as_deref(), Some("2024-12-31"));
        assert_eq!(value_back(&f, "2025-01-15").as_deref(), Ok("15.01.2025"));
        // HubSpot's midnight-UTC epoch milliseconds.
        assert_eq!(value_back(&f, "1736899200000").as_deref(), Ok("15.01.2025"));
        assert_eq!(value_back(&f, "").as_deref(), Ok(""));
    }

    #[test]
    fn a_datetime_comes_back_at_the_app_offset() {
        let f = field(
            r#"{ crm = "createdate", direction = "both", transform = [{ datetime = "%d.%m.%Y %H:%M", utc_offset = "+01:00" }] }"#,
        );
        assert_eq!(
            value_back(&f, "2026-03-04T09:20:00.000Z").as_deref(),
            Ok("04.03.2026 10:20")
        );
        assert_eq!(
            value_back(&f, "1772616000000").as_deref(),
            Ok("04.03.2026 10:20")
        );
        assert_eq!(
            push(&f, "04.03.2026 10:20").as_deref(),
            Some("2026-03-04T09:20:00.000Z")
        );
    }

    #[test]
    fn a_number_comes_back_in_the_app_notation() {
        let f = field(
            r#"{ crm = "amount", direction = "both", transform = [{ number = { decimal = "," } }] }"#,
        );
        assert_eq!(value_back(&f, "1234.567").as_deref(), Ok("1234,567"));
        assert_eq!(value_back(&f, "-0.5").as_deref(), Ok("-0,5"));
        assert_eq!(push(&f, "1234,567").as_deref(), Some("1234.567"));
        let fixed = field(
            r#"{ crm = "amount", direction = "both", transform = [{ number = { decimal = ",", decimals = 2 } }] }"#,
        );
        assert_eq!(value_back(&fixed, "1234.5").as_deref(), Ok("1234,50"));
        assert_eq!(value_back(&fixed, "1234.567").as_deref(), Ok("1234,57"));
    }

    #[test]
    fn lossy_transforms_write_the_crm_value_as_it_is() {
        for t in [
            r#""trim""#,
            r#""lowercase""#,
            r#""uppercase""#,
            r#""title_case""#,
            r#""collapse_whitespace""#,
            r#""normalize_email""#,
            r#"{ e164 = "DE" }"#,
            r#"{ truncate = 3 }"#,
        ] {
            let f = field(&format!(
                r#"{{ crm = "x", direction = "both", transform = [{t}] }}"#
            ));
            assert_eq!(value_back(&f, " Ada  X ").as_deref(), Ok(" Ada  X "), "{t}");
        }
        // A CRM edit in another case comes back as typed; the push maps it as any app edit.
        let f =
            field(r#"{ crm = "email", direction = "both", transform = ["trim", "lowercase"] }"#);
        assert_eq!(value_back(&f, "Ada@X.com").as_deref(), Ok("Ada@X.com"));
        assert_eq!(push(&f, "Ada@X.com").as_deref(), Some("ada@x.com"));
    }

    #[test]
    fn the_status_map_is_undone_before_the_transforms() {
        // Forward: number, then the map; back: the map, then number.
        let f = field(
            r#"{ crm = "rating", direction = "both", transform = ["trim", { number = { decimal = "," } }], map = { "1" = "low", "2.5" = "mid" } }"#,
        );
        assert_eq!(push(&f, " 2,5 ").as_deref(), Some("mid"));
        assert_eq!(value_back(&f, "mid").as_deref(), Ok("2,5"));
        assert_eq!(push(&f, "2,5").as_deref(), Some("mid"));
        assert_eq!(value_back(&f, "low").as_deref(), Ok("1"));
        let e = value_back(&f, "high").expect_err("unmapped");
        assert!(e.contains("no mapping back"), "{e}");
    }

    #[test]
    fn status_maps_alone_work_as_before() {
        let f = field(
            r#"{ crm = "dealstage", direction = "both", transform = ["lowercase"], map = { shipped = "closedwon", delivered = "closedwon" }, reverse = { closedwon = "shipped" } }"#,
        );
        assert_eq!(value_back(&f, "closedwon").as_deref(), Ok("shipped"));
        assert_eq!(push(&f, "SHIPPED").as_deref(), Some("closedwon"));
    }

    #[test]
    fn a_value_without_a_way_back_names_property_value_and_format() {
        let f = field(
            r#"{ crm = "closedate", direction = "both", transform = [{ date = "%d.%m.%Y" }] }"#,
        );
        assert_eq!(
            value_back(&f, "not-a-date"),
            Err("`closedate`: CRM value `not-a-date` is not a date (YYYY-MM-DD)".into())
        );
        let f = field(
            r#"{ crm = "createdate", direction = "both", transform = [{ datetime = "iso" }] }"#,
        );
        let e = value_back(&f, "yesterday").expect_err("no datetime");
        assert!(
            e.starts_with("`createdate`: CRM value `yesterday` is not a datetime (ISO-8601"),
            "{e}"
        );
        let f = field(r#"{ crm = "amount", direction = "both", transform = ["number"] }"#);
        assert_eq!(
            value_back(&f, "1,234"),
            Err(
                "`amount`: CRM value `1,234` is not a number (a plain decimal such as -1234.5)"
                    .into()
            )
        );
    }

    #[test]
    fn a_failure_after_the_status_map_names_both_values() {
        let f = field(
            r#"{ crm = "closedate", direction = "both", transform = [{ date = "%d.%m.%Y" }], map = { "soon" = "later" } }"#,
        );
        assert_eq!(
            value_back(&f, "later"),
            Err("`closedate`: CRM value `later` reads `soon` before transform `date`, which is not a date (YYYY-MM-DD)".into())
        );
    }
}

#[cfg(test)]
mod round_trip {
    //! `forward(back(crm)) == crm` for every CRM value in a transform's output domain: the
    //! domain is produced by the forward transform itself from generated app values.
    use crate::transform::Transform;
    use chrono::DateTime;
    use proptest::prelude::*;

    fn transform(toml_value: &str) -> Transform {
        #[derive(serde::Deserialize)]
        struct W {
            t: crate::config::Item,
        }
        let item = toml::from_str::<W>(&format!("t = {toml_value}"))
            .expect("test item parses")
            .t;
        Transform::from_item(&item).expect("test transform reads")
    }

    /// Pushing what `crm` pulls back as gives `crm` again.
    fn stable(t: &Transform, crm: &str) -> Result<(), TestCaseError> {
        let back = t.back(crm);
        prop_assert!(back.is_ok(), "{t:?}: {crm} has no way back: {back:?}");
        let back = back.unwrap_or_default();
        prop_assert_eq!(t.apply(&back), Ok(crm.to_string()), "{:?} via {}", t, back);
        Ok(())
    }

    /// Instants from 1900 to 2199, in milliseconds.
    fn instants() -> impl Strategy<Value = i64> {
        -2_208_988_800_000i64..7_258_118_400_000
    }

    proptest! {
        #[test]
        fn dates(ms in instants(), fmt in prop_oneof![
            Just(r#"{ date = "%d.%m.%Y" }"#),
            Just(r#"{ date = ["%m/%d/%Y", "iso"] }"#),
            Just(r#"{ date = "%d %B %Y" }"#),
            Just(r#"{ date = "iso" }"#),
            Just(r#"{ date = "unix" }"#),
            Just(r#"{ date = "unix_ms" }"#),
        ]) {
            let t = transform(fmt);
            let crm = DateTime::from_timestamp_millis(ms).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
            stable(&t, &crm)?;
        }

        #[test]
        fn datetimes(ms in instants(), fmt in prop_oneof![
            Just(r#"{ datetime = "iso" }"#),
            Just(r#"{ datetime = "iso", utc_offset = "-05:30" }"#),
            Just(r#"{ datetime = "unix_ms" }"#),
            Just(r#"{ datetime = "unix_ms", utc_offset = "+02:00" }"#),
            Just(r#"{ datetime = "%d.%m.%Y %H:%M:%S%.3f", utc_offset = "+01:00" }"#),
            Just(r#"{ datetime = "%Y-%m-%d %H:%M:%S%.3f %z", utc_offset = "+09:00" }"#),
            Just(r#"{ datetime = "%d.%m.%Y %H:%M:%S%.3f" }"#),
        ]) {
            let t = transform(fmt);
            let crm = DateTime::from_timestamp_millis(ms).map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()).unwrap_or_default();
            stable(&t, &crm)?;
        }

        #[test]
        fn coarse_datetimes(minutes in -36_816_480i64..120_968_640, fmt in prop_oneof![
            Just(r#"{ datetime = "%d.%m.%Y %H:%M", utc_offset = "+01:00" }"#),
            Just(r#"{ datetime = "%m/%d/%Y %I:%M %p", utc_offset = "-08:00" }"#),
            Just(r#"{ datetime = "unix" }"#),
        ]) {
            // These formats hold whole minutes, so the forward output is in whole minutes.
            let t = transform(fmt);
            let crm = DateTime::from_timestamp(minutes * 60, 0).map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()).unwrap_or_default();
            stable(&t, &crm)?;
        }

        #[test]
        fn numbers(app in "[-+]?[0-9]{1,3}([ .,']?[0-9]{3}){0,3}([.,][0-9]{1,6})?", fmt in prop_oneof![
            Just(r#""number""#),
            Just(r#"{ number = { decimal = "," } }"#),
            Just(r#"{ number = { decimal = ",", decimals = 2 } }"#),
            Just(r#"{ number = { decimal = ".", decimals = 0 } }"#),
        ]) {
            let t = transform(fmt);
            if let Ok(crm) = t.apply(&app) {
                stable(&t, &crm)?;
            }
        }

        #[test]
        fn normalisers(app in "\\PC{0,40}", fmt in prop_oneof![
            Just(r#""trim""#),
            Just(r#""lowercase""#),
            Just(r#""uppercase""#),
            Just(r#""title_case""#),
            Just(r#""collapse_whitespace""#),
            Just(r#""normalize_email""#),
            Just(r#"{ truncate = 7 }"#),
        ]) {
            let t = transform(fmt);
            if let Ok(crm) = t.apply(&app) {
                stable(&t, &crm)?;
            }
        }

        #[test]
        fn phone_numbers(app in "[+]?[0-9 ()-]{3,18}") {
            let t = transform(r#"{ e164 = "DE" }"#);
            if let Ok(crm) = t.apply(&app) {
                stable(&t, &crm)?;
            }
        }
    }
}
