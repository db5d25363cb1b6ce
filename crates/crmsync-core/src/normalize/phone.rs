//! Phone numbers in E.164 (`+4930123456`), the form HubSpot and Salesforce store and dial
//! best. Parsing and validity come from libphonenumber's metadata (the `phonenumber` crate); a
//! number written without a country code needs the app's default region (`{ e164 = "DE" }`).

use phonenumber::country::Id;

/// Reads a region code such as `DE` or `us` (ISO 3166-1 alpha-2).
pub fn parse_region(s: &str) -> Result<Id, String> {
    s.trim().to_ascii_uppercase().parse::<Id>().map_err(|_| {
        format!("`{s}` is not a region code; use ISO 3166 letters such as \"DE\" or \"US\"")
    })
}

/// English names (and a few usual spellings) of countries, to their ISO 3166-1 alpha-2 code,
/// for a `region_column` that holds names rather than codes. Compared case-insensitively.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("argentina", "AR"),
    ("australia", "AU"),
    ("austria", "AT"),
    ("belgium", "BE"),
    ("brazil", "BR"),
    ("bulgaria", "BG"),
    ("canada", "CA"),
    ("chile", "CL"),
    ("china", "CN"),
    ("colombia", "CO"),
    ("croatia", "HR"),
    ("czech republic", "CZ"),
    ("czechia", "CZ"),
    ("denmark", "DK"),
    ("egypt", "EG"),
    ("estonia", "EE"),
    ("finland", "FI"),
    ("france", "FR"),
    ("germany", "DE"),
    ("greece", "GR"),
    ("hong kong", "HK"),
    ("hungary", "HU"),
    ("iceland", "IS"),
    ("india", "IN"),
    ("indonesia", "ID"),
    ("ireland", "IE"),
    ("israel", "IL"),
    ("italy", "IT"),
    ("japan", "JP"),
    ("kenya", "KE"),
    ("latvia", "LV"),
    ("lithuania", "LT"),
    ("luxembourg", "LU"),
    ("malaysia", "MY"),
    ("mexico", "MX"),
    ("morocco", "MA"),
    ("netherlands", "NL"),
    ("the netherlands", "NL"),
    ("new zealand", "NZ"),
    ("nigeria", "NG"),
    ("norway", "NO"),
    ("pakistan", "PK"),
    ("peru", "PE"),
    ("philippines", "PH"),
    ("poland", "PL"),
    ("portugal", "PT"),
    ("romania", "RO"),
    ("saudi arabia", "SA"),
    ("serbia", "RS"),
    ("singapore", "SG"),
    ("slovakia", "SK"),
    ("slovenia", "SI"),
    ("south africa", "ZA"),
    ("south korea", "KR"),
    ("korea", "KR"),
    ("spain", "ES"),
    ("sweden", "SE"),
    ("switzerland", "CH"),
    ("taiwan", "TW"),
    ("thailand", "TH"),
    ("turkey", "TR"),
    ("türkiye", "TR"),
    ("ukraine", "UA"),
    ("united arab emirates", "AE"),
    ("uae", "AE"),
    ("united kingdom", "GB"),
    ("uk", "GB"),
    ("great britain", "GB"),
    ("england", "GB"),
    ("scotland", "GB"),
    ("wales", "GB"),
    ("northern ireland", "GB"),
    ("united states", "US"),
    ("united states of america", "US"),
    ("usa", "US"),
    ("vietnam", "VN"),
];

/// The region a country column's value names: an ISO 3166-1 alpha-2 code (`GB`, `us`), or an
/// English country name (`United Kingdom`); `None` when empty or not recognised.
pub fn region_of(value: &str) -> Option<Id> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.len() == 2
        && let Ok(id) = v.to_ascii_uppercase().parse::<Id>()
    {
        return Some(id);
    }
    let lower = v.to_lowercase();
    COUNTRY_NAMES
        .iter()
        .find(|(name, _)| *name == lower)
        .and_then(|(_, code)| code.parse::<Id>().ok())
}

fn parse(value: &str, region: Option<Id>) -> Result<phonenumber::PhoneNumber, String> {
    // The parser has panicked on odd input in past releases; a panic must never take a sync
    // down, so it is contained and reported like any unparseable number.
    let v = value.to_string();
    let parsed = std::panic::catch_unwind(move || phonenumber::parse(region, v))
        .map_err(|_| "is not a phone number".to_string())?;
    parsed.map_err(|e| match region {
        None => {
            format!("is not a phone number ({e}); without a default region it must start with +")
        }
        Some(_) => format!("is not a phone number ({e})"),
    })
}

/// `value` in E.164. Empty stays empty. Fails only when it cannot be parsed; whether the
/// number exists in its numbering plan is the `phone` rule's question.
pub fn to_e164(value: &str, region: Option<Id>) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let e164 = parse(value, region)?
        .format()
        .mode(phonenumber::Mode::E164)
        .to_string();
    // libphonenumber writes some malformed numbers in a form it reads back as another number
    // (`00010` in DE -> `+49010` -> `+4910`, `490001` -> `+4901` -> error). Only a form that
    // reads back as itself is accepted, so the transform is idempotent and a value pulled from
    // the CRM pushes back unchanged.
    match parse(&e164, region).map(|n| n.format().mode(phonenumber::Mode::E164).to_string()) {
        Ok(again) if again == e164 => Ok(e164),
        _ => Err(format!(
            "is not a phone number (its E.164 form `{e164}` does not read back as itself)"
        )),
    }
}

/// Whether `value` is a valid number of its numbering plan.
pub fn check(value: &str, region: Option<Id>) -> Result<(), String> {
    let n = parse(value.trim(), region)?;
    if phonenumber::is_valid(&n) {
        Ok(())
    } else {
        Err("is not a valid phone number for its country".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn national_numbers_get_the_default_region() {
        let de = parse_region("de").ok();
        assert_eq!(to_e164("030 1234567", de).as_deref(), Ok("+49301234567"));
        assert_eq!(
            to_e164("+49 30 1234567", None).as_deref(),
            Ok("+49301234567")
        );
        assert_eq!(
            to_e164("(617) 555-0123", parse_region("US").ok()).as_deref(),
            Ok("+16175550123")
        );
        assert_eq!(to_e164("", de).as_deref(), Ok(""));
        assert!(to_e164("call me", de).is_err());
        assert!(to_e164("030 1234567", None).is_err());
        for unstable in ["00010", "490001"] {
            let e = to_e164(unstable, de).expect_err("must fail");
            assert!(e.contains("does not read back"), "{unstable}: {e}");
        }
        assert!(parse_region("Germany").is_err());
    }

    #[test]
    fn validity_uses_the_numbering_plan() {
        assert!(check("+49 30 1234567", None).is_ok());
        assert!(check("+1 617 111 0123", None).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,30}") {
            let _ = to_e164(&s, Some(Id::DE));
            let _ = check(&s, None);
        }

        #[test]
        fn idempotent(s in "[+]?[0-9 ()-]{3,18}") {
            if let Ok(once) = to_e164(&s, Some(Id::DE)) {
                prop_assert_eq!(to_e164(&once, Some(Id::DE)), Ok(once.clone()));
            }
        }
    }
}
