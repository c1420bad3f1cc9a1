//! Go's `time.Time.String()` for UTC times, which `humanizeTimestamp` and
//! a printed `toTime` produce: `2006-01-02 15:04:05.999999999 +0000 UTC`.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Go's `Time.String()` of `ns` nanoseconds since the epoch, in UTC:
/// fractional seconds without trailing zeros, none at all when whole.
pub(crate) fn time_string(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(time_string(1_500_000_000), "1970-01-01 00:00:01.5 +0000 UTC");
        assert_eq!(time_string(1_435_065_584_128_000_000), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(time_string(-1), "1969-12-31 23:59:59.999999999 +0000 UTC");
        assert_eq!(time_string(951_782_400_000_000_000), "2000-02-29 00:00:00 +0000 UTC");
    }
}
