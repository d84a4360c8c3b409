//! Wall-clock helpers. The state machines take time as an argument; only actors read the clock.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `(year, month)` of a Unix time in milliseconds, UTC (Howard Hinnant's civil-from-days).
pub fn year_month(ms: u64) -> (u32, u32) {
    let days = i64::try_from(ms / 86_400_000).unwrap_or(0);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        u32::try_from(year).unwrap_or(0),
        u32::try_from(month).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn year_month_of_known_dates() {
        assert_eq!(super::year_month(0), (1970, 1));
        // 2026-11-22T00:00:00Z
        assert_eq!(super::year_month(1_795_305_600_000), (2026, 11));
        // 2024-02-29T12:00:00Z
        assert_eq!(super::year_month(1_709_208_000_000), (2024, 2));
    }
}
