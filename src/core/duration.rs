//! Human durations ("45s", "90m", "1h 30m", "2d") and percentages ("75%").
//!
//! Durations are whole seconds; `d` is exactly 24 hours (business time has no
//! calendar days). Pure parsing, no I/O.

use std::fmt;

/// A parse failure, worded so it can follow "key: " in a config error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The longest duration accepted: ten years of 24-hour days.
pub const MAX_SECONDS: i64 = 3650 * 86_400;

/// Parses `"1h 30m"`, `"90m"`, `"45s"`, `"2d"`, `"1h30m"` into seconds, at
/// most [`MAX_SECONDS`].
pub fn parse_duration(text: &str) -> Result<i64, ParseError> {
    let hint = "write a number followed by a unit: s, m, h or d, e.g. \"1h 30m\"";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseError(format!("empty duration; {hint}")));
    }
    let mut total: i64 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(ParseError(format!("\"{text}\" is not a duration; {hint}")));
        }
        let number: i64 = rest[..digits].parse().map_err(|_| ParseError(format!("\"{text}\" is too large")))?;
        rest = rest[digits..].trim_start();
        if let Some(after) = rest.strip_prefix(['.', ',']) {
            return Err(ParseError(decimal_hint(text, number, after)));
        }
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let scale = match &rest[..unit_len] {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "" => {
                return Err(ParseError(format!("\"{text}\" has a number without a unit; {hint}")));
            }
            other => {
                return Err(ParseError(format!("\"{text}\" has an unknown unit \"{other}\"; {hint}")));
            }
        };
        total = number
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| ParseError(format!("\"{text}\" is too large")))?;
        rest = rest[unit_len..].trim_start();
    }
    if total > MAX_SECONDS {
        return Err(ParseError(format!("\"{text}\" is longer than the limit of 3650d")));
    }
    Ok(total)
}

/// "decimals are not supported" with the same duration in whole units when
/// it has one (`1.5h` → `1h 30m`).
fn decimal_hint(text: &str, whole: i64, after: &str) -> String {
    let fraction_digits = after.bytes().take_while(u8::is_ascii_digit).count();
    let unit = after[fraction_digits..].trim_start();
    let scale = match unit {
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(3600),
        "d" | "day" | "days" => Some(86_400),
        _ => None,
    };
    let exact = scale.and_then(|scale: i64| {
        let fraction = &after[..fraction_digits];
        let denominator = 10_i64.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        let numerator: i64 = fraction.parse().ok()?;
        let secs = whole.checked_mul(scale)?.checked_add(numerator.checked_mul(scale)? / denominator)?;
        (numerator * scale % denominator == 0).then_some(secs)
    });
    match exact {
        Some(secs) => format!("\"{text}\": decimals are not supported; write \"{}\"", Human(secs)),
        None => format!("\"{text}\": decimals are not supported; combine whole units, e.g. \"1h 30m\""),
    }
}

/// Parses `"75%"` into 75. Accepts 0 to 100.
pub fn parse_percent(text: &str) -> Result<u32, ParseError> {
    let hint = "write a whole percentage such as \"75%\"";
    let number =
        text.trim().strip_suffix('%').ok_or_else(|| ParseError(format!("\"{text}\" is not a percentage; {hint}")))?;
    let value: u32 =
        number.trim().parse().map_err(|_| ParseError(format!("\"{text}\" is not a percentage; {hint}")))?;
    if value > 100 {
        return Err(ParseError(format!("\"{text}\" is over 100%")));
    }
    Ok(value)
}

/// Displays seconds the way the config writes them: `1h 30m`, `45s`, `0s`.
pub struct Human(pub i64);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0;
        if secs == 0 {
            return f.write_str("0s");
        }
        if secs < 0 {
            f.write_str("-")?;
            secs = -secs;
        }
        let mut first = true;
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            let n = secs / size;
            secs %= size;
            if n > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{n}{unit}")?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_refused_with_the_whole_units_to_write_instead() {
        assert_eq!(parse_duration("1.5h").unwrap_err().0, "\"1.5h\": decimals are not supported; write \"1h 30m\"");
        assert_eq!(parse_duration("0.25d").unwrap_err().0, "\"0.25d\": decimals are not supported; write \"6h\"");
        assert!(parse_duration("1.3333h").unwrap_err().0.contains("combine whole units"));
    }

    #[test]
    fn durations_parse_in_every_documented_form() {
        for (text, secs) in [
            ("45s", 45),
            ("90m", 5400),
            ("1h", 3600),
            ("1h 30m", 5400),
            ("1h30m", 5400),
            ("2d", 172_800),
            (" 1d 1h 1m 1s ", 90_061),
            ("0s", 0),
            ("3 hours", 10_800),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_how_to_fix_them() {
        for text in ["", "1", "h", "1x", "1.5h", "-1h", "99999999999999999999s"] {
            let err = parse_duration(text).unwrap_err();
            assert!(!err.0.is_empty(), "{text}");
        }
        assert!(parse_duration("1x").unwrap_err().0.contains("unknown unit \"x\""));
        assert!(parse_duration("5").unwrap_err().0.contains("without a unit"));
        assert!(parse_duration("3651d").unwrap_err().0.contains("limit of 3650d"));
        assert_eq!(parse_duration("3650d"), Ok(MAX_SECONDS));
    }

    #[test]
    fn percentages_parse_and_reject_out_of_range() {
        assert_eq!(parse_percent("75%"), Ok(75));
        assert_eq!(parse_percent("0%"), Ok(0));
        assert!(parse_percent("75").is_err());
        assert!(parse_percent("101%").is_err());
    }

    #[test]
    fn human_display_round_trips() {
        for secs in [0, 45, 5400, 90_061, 172_800] {
            assert_eq!(parse_duration(&Human(secs).to_string()), Ok(secs));
        }
        assert_eq!(Human(5400).to_string(), "1h 30m");
    }
}
