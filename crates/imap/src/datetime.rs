//! Dates as IMAP writes them: `date` (`1-Feb-1994`, SEARCH), `date-time`
//! (`" 1-Feb-1994 21:52:25 -0800"`, INTERNALDATE and APPEND), and the day of an RFC 5322
//! `Date:` header in its own time zone (SEARCH SENTON and friends, RFC 9051 6.4.4).
//! No time-zone database: INTERNALDATE is given in UTC (`+0000`), and SEARCH's BEFORE,
//! ON and SINCE compare UTC days.

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn month_from_name(s: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

fn valid_date(y: i64, m: u32, d: u32) -> bool {
    (1..=12).contains(&m)
        && (1..=31).contains(&d)
        && (1..=9999).contains(&y)
        && civil_from_days(days_from_civil(y, m, d)) == (y, m, d)
}

/// Parses `date-text` (`d-Mon-yyyy`), giving the day number.
pub fn parse_date(s: &[u8]) -> Option<i64> {
    let mut it = s.split(|&b| b == b'-');
    let (d, m, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || d.is_empty() || d.len() > 2 || y.len() != 4 {
        return None;
    }
    let d: u32 = std::str::from_utf8(d).ok()?.parse().ok()?;
    let y: i64 = std::str::from_utf8(y).ok()?.parse().ok()?;
    let m = month_from_name(m)?;
    valid_date(y, m, d).then(|| days_from_civil(y, m, d))
}

/// Parses the inside of a `date-time` (`dd-Mon-yyyy hh:mm:ss +zzzz`, the day may have a
/// leading space), giving seconds since the epoch.
pub fn parse_date_time(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    let s = s.strip_prefix(' ').unwrap_or(s);
    let mut parts = s.split(' ');
    let (date, time, zone) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let day = parse_date(date.as_bytes())?;
    let t: Vec<&str> = time.split(':').collect();
    if t.len() != 3 || t.iter().any(|p| p.len() != 2) {
        return None;
    }
    let (h, mi, se): (i64, i64, i64) = (t[0].parse().ok()?, t[1].parse().ok()?, t[2].parse().ok()?);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let zb = zone.as_bytes();
    if zb.len() != 5 || !matches!(zb[0], b'+' | b'-') || !zb[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    let off = (zh * 60 + zm) * 60 * if zb[0] == b'-' { -1 } else { 1 };
    Some(day * 86_400 + h * 3600 + mi * 60 + se - off)
}

/// `date-time` for INTERNALDATE, in UTC: `01-Feb-2026 11:55:45 +0000` (`date-day-fixed`
/// allows a leading space or zero; zero, as Dovecot writes it).
pub fn format_date_time(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The day of an RFC 5322 date (`Tue, 1 Feb 1994 21:52:25 -0800`) as written, ignoring
/// time and zone, as SEARCH SENTON/SENTBEFORE/SENTSINCE want it.
pub fn header_date_day(value: &str) -> Option<i64> {
    let v = match value.find(',') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    let mut words = v.split_whitespace();
    let d: u32 = words.next()?.parse().ok()?;
    let m = month_from_name(words.next()?.as_bytes())?;
    let y: i64 = words.next()?.parse().ok()?;
    // RFC 5322 4.3 obsolete two- and three-digit years.
    let y = match y {
        0..=49 => y + 2000,
        50..=999 => y + 1900,
        _ => y,
    };
    valid_date(y, m, d).then(|| days_from_civil(y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(parse_date(b"1-Feb-1994"), Some(days_from_civil(1994, 2, 1)));
        assert_eq!(parse_date(b"31-feb-1994"), None);
        assert_eq!(parse_date(b"1-Feb-94"), None);
        assert_eq!(format_date_time(0), "01-Jan-1970 00:00:00 +0000");
        let t = parse_date_time(b"17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(format_date_time(t), "17-Jul-1996 09:44:25 +0000");
        assert_eq!(parse_date_time(b" 1-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_date_time(b"1-Jan-1970 00:00:00"), None);
        assert_eq!(
            header_date_day("Tue, 1 Feb 1994 23:59:00 -0800"),
            Some(days_from_civil(1994, 2, 1))
        );
        assert_eq!(
            header_date_day("1 Feb 94 23:59"),
            Some(days_from_civil(1994, 2, 1))
        );
        assert_eq!(header_date_day("garbage"), None);
    }
}
