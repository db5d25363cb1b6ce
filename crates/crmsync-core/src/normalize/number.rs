//! Numbers as apps write them (`1.234,50`, `1 234.5`, `+7`) turned into the plain decimal HubSpot
//! number properties take (`1234.50`): one decimal separator of the user's choosing, thousands
//! separators removed only where they group digits by three, optional rounding to fixed
//! decimals. Rounding works on the digit string, never through `f64`, so no value is distorted.
//! The way back ([`to_app`]) writes a CRM number in the app's notation.

/// Characters accepted as thousands separators (besides `.`/`,` when not the decimal separator).
const GROUPING: [char; 5] = [' ', '\u{a0}', '\u{202f}', '\'', '_'];

/// Converts `value` to a canonical decimal (`-1234.5`): `decimal` is the app's decimal
/// separator, `decimals` rounds (half away from zero) and pads to that many places.
/// An empty value stays empty.
pub fn normalize(value: &str, decimal: char, decimals: Option<u32>) -> Result<String, String> {
    let s = value.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let other = if decimal == ',' { '.' } else { ',' };
    let is_sep = |c: char| c == other || GROUPING.contains(&c);
    if let Some(bad) = body
        .chars()
        .find(|c| !c.is_ascii_digit() && *c != decimal && !is_sep(*c))
    {
        return Err(format!("is not a number (unexpected `{bad}`)"));
    }
    let mut decimal = decimal;
    let decimal_count = body.matches(decimal).count();
    if decimal_count > 1 {
        return Err(format!("is not a number (more than one `{decimal}`)"));
    }
    // A single `other` separator that cannot be a thousands separator (`1234.5` when the app
    // writes `1.234,5`) is already a decimal point: canonical input passes through unchanged.
    if decimal_count == 0 && body.matches(other).count() == 1 && !grouped(body, other) {
        decimal = other;
    }
    let (int_raw, frac) = match body.split_once(decimal) {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err("is not a number (separator after the decimal point)".into());
    }
    if int_raw.chars().any(|c| !c.is_ascii_digit()) && !grouped(int_raw, '\0') {
        return Err("is not a number (thousands separators must group three digits)".into());
    }
    let int: String = int_raw.chars().filter(char::is_ascii_digit).collect();
    if int.is_empty() && frac.is_empty() {
        return Err("is not a number (no digits)".into());
    }
    let (int, frac) = match decimals {
        Some(n) => round(&int, frac, n as usize),
        None => (int, frac.to_string()),
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.chars().all(|c| c == '0');
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

/// A CRM number (a plain decimal such as `-1234.5`) in the app's notation: the reverse of
/// [`normalize`]. The decimal point becomes `decimal`; no thousands separators are added and
/// the CRM's digits are kept, unless `decimals` rounds them as [`normalize`] does. Empty stays
/// empty.
pub fn to_app(crm: &str, decimal: char, decimals: Option<u32>) -> Result<String, String> {
    let s = crm.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let body = s.strip_prefix('-').unwrap_or(s);
    let digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    let plain = match body.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(body),
    };
    if !plain {
        return Err("is not a number (a plain decimal such as -1234.5)".into());
    }
    let s = match decimals {
        // A plain decimal has at most one `.` and no `,`: point mode reads it as it is.
        Some(_) => normalize(s, '.', decimals)?,
        None => s.to_string(),
    };
    Ok(s.replace('.', &decimal.to_string()))
}

/// Moves the decimal point of a plain decimal (`-1234.5`, as [`normalize`] writes) `places`
/// to the left (a negative `places` moves it right): exact, on the digit string. Leading zeros
/// of the integer part and trailing zeros of the fraction are dropped (`129900` left by 2 is
/// `1299`, `1299.5` right by 2 is `129950`).
pub fn shift(plain: &str, places: i32) -> Result<String, String> {
    let s = plain.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if !(int.chars().all(|c| c.is_ascii_digit()) && frac.chars().all(|c| c.is_ascii_digit()))
        || (int.is_empty() && frac.is_empty())
    {
        return Err("is not a number (a plain decimal such as -1234.5)".into());
    }
    let digits: String = format!("{int}{frac}");
    // Position of the decimal point in `digits`, moved.
    let point = i64::try_from(int.len()).unwrap_or(i64::MAX) - i64::from(places);
    let (int, frac) = if point <= 0 {
        let zeros = usize::try_from(-point).unwrap_or(0);
        (String::new(), format!("{}{digits}", "0".repeat(zeros)))
    } else {
        let p = usize::try_from(point).unwrap_or(usize::MAX);
        if p >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(p - digits.len())),
                String::new(),
            )
        } else {
            (digits[..p].to_string(), digits[p..].to_string())
        }
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.trim_end_matches('0');
    let zero = int == "0" && frac.is_empty();
    let mut out = String::new();
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Ok(out)
}

/// Whether the separators in `s` (any non-digit, or only `sep` when given) group digits in
/// threes: `1.234.567`, `12 345`. `sep = '\0'` accepts any separator.
fn grouped(s: &str, sep: char) -> bool {
    let groups: Vec<&str> = s
        .split(|c: char| {
            if sep == '\0' {
                !c.is_ascii_digit()
            } else {
                c == sep
            }
        })
        .collect();
    groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups[0].chars().all(|c| c.is_ascii_digit())
        && groups[1..]
            .iter()
            .all(|g| g.len() == 3 && g.chars().all(|c| c.is_ascii_digit()))
}

/// Rounds `int.frac` half away from zero to `n` places, padding with zeros.
fn round(int: &str, frac: &str, n: usize) -> (String, String) {
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes().take(n)).collect();
    while digits.len() < int.len() + n {
        digits.push(b'0');
    }
    if frac.as_bytes().get(n).is_some_and(|d| *d >= b'5') {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split = digits.len() - n;
    let text = String::from_utf8(digits).unwrap_or_default();
    (text[..split].to_string(), text[split..].to_string())
}

#[cfg(test)]
mod tests {
    use super::{normalize, shift, to_app};

    #[test]
    fn shifts_are_exact() {
        assert_eq!(shift("129900", 2).as_deref(), Ok("1299"));
        assert_eq!(shift("129950", 2).as_deref(), Ok("1299.5"));
        assert_eq!(shift("5", 2).as_deref(), Ok("0.05"));
        assert_eq!(shift("-5", 3).as_deref(), Ok("-0.005"));
        assert_eq!(shift("1299.00", -2).as_deref(), Ok("129900"));
        assert_eq!(shift("1299.5", -2).as_deref(), Ok("129950"));
        assert_eq!(shift("0.001", -2).as_deref(), Ok("0.1"));
        assert_eq!(shift("0", 2).as_deref(), Ok("0"));
        assert_eq!(shift("", 2).as_deref(), Ok(""));
        assert!(shift("1e5", 2).is_err());
        assert!(shift("-", 2).is_err());
    }
    use proptest::prelude::*;

    #[test]
    fn decimal_comma_and_grouping() {
        assert_eq!(normalize("1.234,50", ',', None).as_deref(), Ok("1234.50"));
        assert_eq!(normalize("1 234,5", ',', None).as_deref(), Ok("1234.5"));
        assert_eq!(normalize("1,234.5", '.', None).as_deref(), Ok("1234.5"));
        assert_eq!(normalize("1'234'567", '.', None).as_deref(), Ok("1234567"));
        assert_eq!(normalize(" -0042 ", '.', None).as_deref(), Ok("-42"));
        assert_eq!(normalize("+7", '.', None).as_deref(), Ok("7"));
        assert_eq!(normalize(",5", ',', None).as_deref(), Ok("0.5"));
        assert_eq!(normalize("", ',', None).as_deref(), Ok(""));
    }

    #[test]
    fn a_lone_point_in_comma_mode_is_already_a_decimal_point() {
        assert_eq!(normalize("1234.5", ',', None).as_deref(), Ok("1234.5"));
        assert_eq!(normalize("1.234", ',', None).as_deref(), Ok("1234"));
    }

    #[test]
    fn fixed_decimals_round_half_away_from_zero() {
        assert_eq!(normalize("2,345", ',', Some(2)).as_deref(), Ok("2.35"));
        assert_eq!(normalize("-2.344", '.', Some(2)).as_deref(), Ok("-2.34"));
        assert_eq!(normalize("9.995", '.', Some(2)).as_deref(), Ok("10.00"));
        assert_eq!(normalize("7", '.', Some(2)).as_deref(), Ok("7.00"));
        assert_eq!(normalize("0.4", '.', Some(0)).as_deref(), Ok("0"));
        assert_eq!(normalize("-0.004", '.', Some(2)).as_deref(), Ok("0.00"));
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for bad in ["abc", "1,2,3", "1.2.3,4,5", "12a", "-", "1e5", "1,23.4"] {
            assert!(normalize(bad, '.', None).is_err(), "{bad}");
        }
        assert!(normalize("1,2,3", ',', None).is_err());
    }

    #[test]
    fn crm_numbers_in_the_app_notation() {
        assert_eq!(to_app("1234.567", ',', None).as_deref(), Ok("1234,567"));
        assert_eq!(to_app("1234.567", '.', None).as_deref(), Ok("1234.567"));
        assert_eq!(to_app("-7", ',', None).as_deref(), Ok("-7"));
        assert_eq!(
            to_app("0.10", ',', None).as_deref(),
            Ok("0,10"),
            "digits kept"
        );
        assert_eq!(to_app("1234.567", ',', Some(2)).as_deref(), Ok("1234,57"));
        assert_eq!(to_app("7", ',', Some(2)).as_deref(), Ok("7,00"));
        assert_eq!(to_app("", ',', Some(2)).as_deref(), Ok(""));
        for bad in ["1,234", "1.2.3", "1e5", "-", ".5", "5.", "abc", "1 234"] {
            assert!(to_app(bad, ',', None).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_shift_and_its_inverse_give_the_number_back(int in 0u64..1_000_000_000, frac in "[0-9]{0,6}", places in -8i32..8) {
            let n = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
            let there = shift(&n, places).expect("a plain decimal");
            let back = shift(&there, -places).expect("a plain decimal");
            prop_assert_eq!(back, shift(&n, 0).expect("a plain decimal"));
        }

        #[test]
        fn never_panics(s in ".{0,40}", comma in any::<bool>(), d in proptest::option::of(0u32..6)) {
            let _ = normalize(&s, if comma { ',' } else { '.' }, d);
        }

        #[test]
        fn point_mode_is_idempotent(s in "[-+]?[0-9 ,.']{0,20}", d in proptest::option::of(0u32..6)) {
            if let Ok(once) = normalize(&s, '.', d) {
                prop_assert_eq!(normalize(&once, '.', d), Ok(once.clone()));
            }
        }

        #[test]
        fn output_is_a_plain_decimal(s in "[-+]?[0-9 ,.']{0,20}", comma in any::<bool>()) {
            if let Ok(out) = normalize(&s, if comma { ',' } else { '.' }, None) {
                prop_assert!(out.is_empty() || out.trim_start_matches('-').split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())), "{}", out);
            }
        }
    }
}
