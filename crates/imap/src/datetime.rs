//! Dates as IMAP writes them: `date` (`1-Feb-1994`, SEARCH), `date-time`
//! (`" 1-Feb-1994 21:52:25 -0800"`, INTERNALDATE and APPEND), and the day of an RFC 5322
//! `Date:` header in its own time zone (SEARCH SENTON and friends, RFC 9051 6.4.4).
//! No time-zone database: INTERNALDATE is given in UTC (`+0000`), and SEARCH's BEFORE,
//! ON and SINCE compare UTC days.

// The calendar arithmetic and the `Date:` day are the message crate's, so that the store
// makes the searchable head (`session::searchable`) at delivery with the same functions.
pub use letterbox_message::date::{
    civil_from_days, days_from_civil, header_date_day, month_from_name, valid_date, MONTHS,
};

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
    let mut v = Vec::with_capacity(26);
    write_date_time(&mut v, ts);
    String::from_utf8(v).unwrap_or_default()
}

/// [`format_date_time`] appended to `out`, without formatting machinery for the years
/// 0 to 9999 (FETCH INTERNALDATE of every message of a mailbox).
pub fn write_date_time(out: &mut Vec<u8>, ts: i64) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        let two = |out: &mut Vec<u8>, n: i64| out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        two(out, i64::from(d));
        out.push(b'-');
        out.extend_from_slice(MONTHS[(m - 1) as usize].as_bytes());
        out.push(b'-');
        two(out, y / 100);
        two(out, y % 100);
        out.push(b' ');
        two(out, secs / 3600);
        out.push(b':');
        two(out, secs / 60 % 60);
        out.push(b':');
        two(out, secs % 60);
        out.extend_from_slice(b" +0000");
        return;
    }
    let s = format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    out.extend_from_slice(s.as_bytes());
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
        // Years past 9999 and before 0 the general way.
        assert_eq!(format_date_time(253_402_300_800), "01-Jan-10000 00:00:00 +0000");
        assert_eq!(format_date_time(-62_167_219_201), "31-Dec--001 23:59:59 +0000");
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
