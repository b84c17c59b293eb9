//! Calendar days for IMAP's dates (RFC 9051 6.4.4 SENTBEFORE/SENTON/SENTSINCE): the
//! day of an RFC 5322 `Date:` field (RFC 5322 3.3) as written, and the civil-date
//! arithmetic IMAP's `date` and `date-time` use (the imap crate's `datetime` re-exports
//! them). Here so that the store's delivery path makes the searchable head
//! ([`crate::searchable`]) with the same functions as IMAP.

/// The English month names, as IMAP and RFC 5322 write them.
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

/// The number (1 to 12) of a month's English three-letter name, any case.
pub fn month_from_name(s: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

/// Whether `y-m-d` is a date of the proleptic Gregorian calendar, years 1 to 9999.
pub fn valid_date(y: i64, m: u32, d: u32) -> bool {
    (1..=12).contains(&m)
        && (1..=31).contains(&d)
        && (1..=9999).contains(&y)
        && civil_from_days(days_from_civil(y, m, d)) == (y, m, d)
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
