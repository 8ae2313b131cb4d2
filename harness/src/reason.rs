//! Reason codes: why a flow, a diagnostic check, the secret guard or the back office said no.
//!
//! Each domain has one `Reason` enum: [`Reason`] here for the card side (the flows, the
//! diagnostic's checks, the card clients' secret guard), [`crate::backoffice::Reason`] for the
//! back office (CMS operations and contacts). A reason has one spelling, its variant name: that
//! is the code shown in reports, JSON (`"code": "WrongPin"`), JUnit and transcripts, and what
//! [`std::str::FromStr`] accepts back.

/// Declares an enum of codes (reasons, a flow's final state): unit variants, optionally one
/// variant wrapping another domain's codes (shown as that code). Generates `as_str`, `ALL`, `Display`, `FromStr`
/// and a `Serialize` as the code string.
macro_rules! codes {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident, )*
        }
        $( wrapping $(#[$wmeta:meta])* $wrap:ident($inner:ty) )?
    ) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            $( $(#[$wmeta])* $wrap($inner), )?
        }

        impl $name {
            /// Every unit code (a wrapped enum's codes are its own).
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The code: the variant's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => stringify!($variant), )*
                    $( $name::$wrap(inner) => inner.as_str(), )?
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::reason::UnknownReason;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if let Some(r) = Self::ALL.iter().find(|r| r.as_str() == s) {
                    return Ok(*r);
                }
                $( if let Ok(inner) = s.parse::<$inner>() {
                    return Ok($name::$wrap(inner));
                } )?
                Err($crate::reason::UnknownReason(s.to_owned()))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use codes;

/// A string that is not a code of the enum asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a known code")]
pub struct UnknownReason(pub String);

codes! {
    /// Why a flow stopped, a diagnostic check failed, or a card client would not send a secret.
    pub enum Reason {
        // The diagnostic's checks (spec/domain.md §6.3 item 1).
        /// Check 1: the ATR is not a card the harness knows.
        UnknownCard,
        /// Check 1: an obsolete mask or lot, or keys too small to renew.
        ObsoleteCard,
        /// Check 2.
        SerialUnreadable,
        /// Check 3: the life-cycle is not "issued".
        NotOperational,
        /// Check 4 (and the renewal): no qualified signature or authentication certificate.
        CertificateMissing,
        /// The PIN is blocked (check 5, or the card said so).
        PinBlocked,
        /// The PUK is blocked: only revocation and a new card remain.
        PukBlocked,
        /// The card refused the PIN.
        WrongPin,
        /// Check 6: the signature key does not match its certificate.
        CertKeyMismatch,
        /// Check 7: renewal opens two months before expiry.
        NotInRenewalWindow,
        CertExpired,
        CertRevoked,
        /// Check 7: not issued by the test CA's issuing CA.
        WrongIssuer,
        /// Check 8: one renewal per device.
        AlreadyRenewed,
        /// Check 8: the device would outlive its six years.
        DeviceTooOld,
        /// Check 9: no room for two new keys and certificates.
        InsufficientMemory,
        /// Check 10: the back office has no record of the card.
        NotInBackOffice,
        /// Check 10: the card belongs to another CDRL.
        IssuedByOtherCdrl,
        // Secrets.
        /// The card refused the PUK.
        WrongPuk,
        /// The object has one try left and the user did not allow it (`--allow-last-try`).
        LastTry,
        /// This PIN was refused earlier in the run: a typo is never sent twice.
        PinAlreadyRejected,
        /// This PUK was refused earlier in the run.
        PukAlreadyRejected,
        /// A new secret and its repetition differ (checked before any APDU).
        Mismatch,
        /// A secret has characters the card does not take (digits only on the CNS and for
        /// every new PIN or PUK; checked before any APDU).
        NotDigits,
        /// A secret's length is outside the card's rule (CNS 5–8 digits; checked before any
        /// APDU).
        BadLength,
        // Consent.
        /// A destructive step on a card in a reader was not confirmed by the card's serial.
        NotConfirmed,
        // The renewal (Aruba Enroll).
        /// The warning that the renewal deletes the decryption key was not accepted.
        DecryptionKeyWarningNotAccepted,
        /// The card's renewal already waits for the CDRL's authorisation.
        AlreadyAwaitingAuthorization,
        /// The holder data is wrong: a renewal cannot change it, a new card is needed.
        NewPurchaseRequired,
        ContractsNotAccepted,
        /// The CA refused the renewal request.
        CaRefused,
        // What a card cannot do.
        /// The holder cannot reset this card (the Incrypto34: only the issuer's SO PIN erases it).
        ResetNotSupported,
        // The two-phase renewal (Aruba Key: `ra order`, then `flow import`).
        /// The CA issued certificates for this card that are not on it yet: import them
        /// first (the FAQ's "import the certificate before renewing with Aruba Key"; also
        /// check 10 of the diagnostic).
        ImportRequired,
        /// No order of this card waits for its certificates to be imported.
        NothingToImport,
        /// The card serial typed is not the card's.
        WrongSerial,
        /// The key pair an order's certificate certifies is not on the card (a reset or
        /// another renewal replaced the order's new keys).
        KeyNotOnCard,
        /// The back office did not accept the card's client authentication (the challenge
        /// signed with the authentication key).
        ClientAuthFailed,
        /// The card cannot keep a renewal's new keys between an order and its import (only
        /// the CNS layout does): it renews with Aruba Enroll.
        TwoPhaseNotSupported,
        /// The card lacks the on-card renewal commands the harness renews with (a genuine
        /// CNS: its renewal commands belong to the vendor middleware and are not public),
        /// found by the read-only capability probe before anything is written.
        OnCardRenewalUnavailable,
    }
    wrapping
    /// A back-office refusal inside a flow (the renewal's contacts).
    BackOffice(crate::backoffice::Reason)
}

impl From<crate::backoffice::Reason> for Reason {
    fn from(r: crate::backoffice::Reason) -> Self {
        Reason::BackOffice(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_variant_names_and_parse_back() {
        assert_eq!(Reason::WrongPin.to_string(), "WrongPin");
        assert_eq!(serde_json::to_value(Reason::PinBlocked).unwrap(), "PinBlocked");
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(*r));
        }
        let contact = Reason::BackOffice(crate::backoffice::Reason::ContactNotUnique);
        assert_eq!(contact.as_str(), "ContactNotUnique");
        assert_eq!("ContactNotUnique".parse::<Reason>(), Ok(contact));
        assert!("WrongPIN".parse::<Reason>().is_err(), "one spelling per reason");
    }

    #[test]
    fn no_code_is_spelled_twice_across_the_domains() {
        let card: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        let mut seen = std::collections::HashSet::new();
        for c in &card {
            assert!(seen.insert(c.to_ascii_lowercase()), "{c} twice");
        }
    }
}
