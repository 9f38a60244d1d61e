//! Durations as people type them: `90`, `90s`, `15m`, `2h`, `1d`, `250ms`
//! (`test poll --timeout`, a train's test `timeout:`).

use std::time::Duration;

/// Parses `90` (seconds), `90s`, `15m`, `2h`, `1d` or `250ms`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 30m, 2h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86400),
        "ms" => return Ok(Duration::from_millis(n)),
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse() {
        use std::time::Duration;
        assert_eq!(super::parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(super::parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(super::parse("250ms"), Ok(Duration::from_millis(250)));
        assert!(super::parse("soon").is_err());
        assert!(super::parse("5y").is_err());
    }
}
