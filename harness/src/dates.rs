//! Calendar dates without a time-zone library: what certificates, renewal windows and device
//! ages need (UTC days).

use std::fmt;
use std::str::FromStr;

/// A UTC calendar date.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Date { year, month, day }
    }

    fn days_in_month(year: u16, month: u8) -> u8 {
        match month {
            2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// Days since 1970-01-01 (proleptic Gregorian).
    pub fn days_since_epoch(self) -> i64 {
        let (y, m, d) = (i64::from(self.year), i64::from(self.month), i64::from(self.day));
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        Date::new(y as u16, m as u8, d as u8)
    }

    pub fn add_days(self, days: i64) -> Self {
        Self::from_days_since_epoch(self.days_since_epoch() + days)
    }

    /// Same day `n` months later (clamped to the month's end).
    pub fn add_months(self, n: i32) -> Self {
        let total = i32::from(self.year) * 12 + i32::from(self.month) - 1 + n;
        let year = (total / 12) as u16;
        let month = (total % 12 + 1) as u8;
        Date::new(year, month, self.day.min(Self::days_in_month(year, month)))
    }

    pub fn add_years(self, n: i32) -> Self {
        self.add_months(n * 12)
    }

    /// Today, from the system clock.
    pub fn today() -> Self {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Self::from_days_since_epoch((secs / 86_400) as i64)
    }

    /// `DDMMYYYY`, as EF_DatiPersonali writes dates.
    pub fn ddmmyyyy(self) -> String {
        format!("{:02}{:02}{:04}", self.day, self.month, self.year)
    }

    /// Midnight UTC of this date as a DER time.
    pub fn to_der(self) -> Result<der::DateTime, DateError> {
        der::DateTime::new(self.year, self.month, self.day, 0, 0, 0)
            .map_err(|e| DateError::OutOfRange { date: self.to_string(), why: e.to_string() })
    }

    /// The UTC date of a DER time.
    pub fn from_der(t: &der::DateTime) -> Self {
        Date::new(t.year(), t.month(), t.day())
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A date that cannot be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not `YYYY-MM-DD` (from 1970 on).
    #[error("{0:?} is not a date (expected YYYY-MM-DD)")]
    NotADate(String),
    /// Not representable as a DER time.
    #[error("date {date}: {why}")]
    OutOfRange { date: String, why: String },
}

impl FromStr for Date {
    type Err = DateError;
    /// `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Self, DateError> {
        let bad = || DateError::NotADate(s.to_owned());
        let mut it = s.split('-');
        let (Some(y), Some(m), Some(d), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        let (y, m, d): (u16, u8, u8) =
            (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
        if y < 1970 || !(1..=12).contains(&m) || d == 0 || d > Self::days_in_month(y, m) {
            return Err(bad());
        }
        Ok(Date::new(y, m, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_arithmetic_round_trips_and_months_clamp() {
        for days in [0, 59, 365, 10_000, 20_605, 24_000] {
            assert_eq!(Date::from_days_since_epoch(days).days_since_epoch(), days);
        }
        assert_eq!(Date::new(2024, 2, 29).add_years(1), Date::new(2025, 2, 28));
        assert_eq!(Date::new(2026, 7, 1).add_months(-2), Date::new(2026, 5, 1));
        assert_eq!("2026-06-01".parse::<Date>(), Ok(Date::new(2026, 6, 1)));
        assert!("2026-02-30".parse::<Date>().is_err());
    }
}
