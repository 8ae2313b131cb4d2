//! Renewal notices (`ra due`): the email that starts a renewal, listing what comes due
//! (spec/domain.md §1.7: expiry emails start when the 2-month renewal window opens).

use crate::backoffice::{BackOffice, CertStatus, ContactKind, EventKind, Store};
use crate::client::KeyRole;
use crate::dates::Date;
use crate::outbox::{self, Email, Stamp};
use serde::Serialize;
use std::path::Path;

/// `--within`: a number of days, written `60d`, `8w` or `60`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Within(pub i64);

/// A `--within` that is not a number of days or weeks from 0 to 3650 days.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WithinError {
    #[error("{0:?}: expected days, e.g. 60d (or weeks, 8w)")]
    NotANumber(String),
    #[error("{0:?}: between 0 and 3650 days")]
    OutOfRange(String),
}

impl std::str::FromStr for Within {
    type Err = WithinError;
    fn from_str(s: &str) -> Result<Self, WithinError> {
        let t = s.trim();
        let (n, unit) = match t.char_indices().last() {
            Some((i, 'd')) => (&t[..i], 1),
            Some((i, 'w')) => (&t[..i], 7),
            _ => (t, 1),
        };
        let n: i64 = n.parse().map_err(|_| WithinError::NotANumber(s.to_owned()))?;
        if !(0..=3650).contains(&n) {
            return Err(WithinError::OutOfRange(s.to_owned()));
        }
        Ok(Within(n * unit))
    }
}

/// A certificate that comes due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DueCertificate {
    pub card: String,
    pub cdrl: String,
    pub role: KeyRole,
    pub serial: String,
    pub not_after: String,
    pub days_left: i64,
    /// The renewal window opens this day (2 months before expiry).
    pub window_opens: String,
    /// Whether this device can still be renewed (one renewal per card).
    pub renewable: bool,
}

/// What one holder is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub codice_fiscale: String,
    pub name: String,
    /// The holder's email; `None`: nothing can be sent.
    pub email: Option<String>,
    pub certificates: Vec<DueCertificate>,
    /// The message file, once written.
    pub file: Option<String>,
}

/// Active certificates that expire after `now` and at most `within` days after it, grouped by
/// holder (in registry order). `window_months`: how long before expiry renewal opens;
/// `max_renewals`: renewals a device allows.
pub fn due(b: &BackOffice, now: Date, within: Within, window_months: i32, max_renewals: u8) -> Vec<Notice> {
    let limit = now.add_days(within.0);
    let mut out: Vec<Notice> = vec![];
    for c in b.certificates.iter().filter(|c| c.status == CertStatus::Active) {
        let Ok(until) = c.not_after.parse::<Date>() else { continue };
        if until <= now || until > limit {
            continue;
        }
        let card = b.card(&c.card_serial);
        let due = DueCertificate {
            card: c.card_serial.clone(),
            cdrl: card.map(|k| k.cdrl.clone()).unwrap_or_default(),
            role: c.role,
            serial: c.serial.clone(),
            not_after: until.to_string(),
            days_left: until.days_since_epoch() - now.days_since_epoch(),
            window_opens: until.add_months(-window_months).to_string(),
            renewable: card.is_none_or(|k| k.renewal_count < max_renewals),
        };
        match out.iter_mut().find(|n| n.codice_fiscale == c.codice_fiscale) {
            Some(n) => n.certificates.push(due),
            None => out.push(Notice {
                codice_fiscale: c.codice_fiscale.clone(),
                name: b
                    .holder(&c.codice_fiscale)
                    .map_or_else(|| c.codice_fiscale.clone(), |h| format!("{} {}", h.first_name, h.last_name)),
                email: b.contact_of(ContactKind::Email, &c.codice_fiscale).map(str::to_owned),
                certificates: vec![due],
                file: None,
            }),
        }
    }
    out
}

/// The notice as an email (`None` when the holder has no email on file).
pub fn message(n: &Notice, now: Stamp, within: Within) -> Option<Email> {
    let to = n.email.clone()?;
    let role = |r: KeyRole| match r {
        KeyRole::Signature => "certificato di firma qualificata",
        KeyRole::Authentication => "certificato di autenticazione (CNS)",
    };
    let mut body = format!(
        "Gentile {},\n\n\
         i certificati qui sotto scadono entro {} giorni (entro il {}).\n\
         Il rinnovo si fa con Aruba Enroll o presso il CDRL indicato, dall'apertura della\n\
         finestra di rinnovo fino alla scadenza: dopo la scadenza non è più possibile rinnovare\n\
         e occorre una nuova carta.\n\n",
        n.name,
        within.0,
        now.date.add_days(within.0)
    );
    let mut cards: Vec<&str> = n.certificates.iter().map(|c| c.card.as_str()).collect();
    cards.dedup();
    for card in cards {
        let of_card: Vec<&DueCertificate> = n.certificates.iter().filter(|c| c.card == card).collect();
        let cdrl = of_card.first().map_or("", |c| c.cdrl.as_str());
        body.push_str(&format!("Carta {card} (CDRL {cdrl}):\n"));
        for c in &of_card {
            body.push_str(&format!(
                "  - {} {}: scade il {} (tra {} giorni); rinnovabile dal {}\n",
                role(c.role),
                c.serial,
                c.not_after,
                c.days_left,
                c.window_opens
            ));
        }
        if of_card.iter().any(|c| !c.renewable) {
            body.push_str("  Questa carta è già stata rinnovata una volta: per continuare serve una nuova carta.\n");
        }
        body.push('\n');
    }
    body.push_str("Messaggio generato da firmalab (CA di test: nessun valore legale).\n");
    Some(Email {
        to,
        subject: format!("Firma digitale: certificati in scadenza entro il {}", now.date.add_days(within.0)),
        date: now,
        id: format!("renewal-notice.{}.{}", n.codice_fiscale, now.date),
        body,
    })
}

/// Writes one message per holder with an email into `dir` and records a "avviso di scadenza"
/// event on the practice of each card concerned; returns how many were written.
pub fn send(
    store: &mut Store,
    notices: &mut [Notice],
    dir: &Path,
    now: Stamp,
    within: Within,
) -> Result<usize, crate::cms::CmsError> {
    let mut sent = 0;
    for n in notices.iter_mut() {
        let Some(mail) = message(n, now, within) else { continue };
        let path = outbox::deliver(
            dir,
            &format!("renewal-notice-{}-{}", now.date, n.codice_fiscale),
            "eml",
            mail.render().as_bytes(),
        )?;
        n.file = Some(path.display().to_string());
        sent += 1;
        let mut cards: Vec<String> = n.certificates.iter().map(|c| c.card.clone()).collect();
        cards.dedup();
        for card in cards {
            let serials: Vec<&str> =
                n.certificates.iter().filter(|c| c.card == card).map(|c| c.serial.as_str()).collect();
            if let Some(p) = store.data.current_practice_mut(&card) {
                p.log(
                    EventKind::RenewalNotice,
                    now.date,
                    format!("avviso di scadenza inviato a {}: {}", mail.to, serials.join(", ")),
                );
            }
        }
    }
    store.save()?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_reads_days_and_weeks() {
        assert_eq!("60d".parse(), Ok(Within(60)));
        assert_eq!("60".parse(), Ok(Within(60)));
        assert_eq!("8w".parse(), Ok(Within(56)));
        assert!("2m".parse::<Within>().is_err());
        assert!("-1d".parse::<Within>().is_err());
    }
}
