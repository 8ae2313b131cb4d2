//! The APDU layer: class (asked of the profile), command chaining (`CLA|10`, ISO 7816-4
//! §5.1.1.1), parsing by the profile, and the response: data shaped to Le, the rest through
//! `61xx` + GET RESPONSE, `6Cxx` when a short Le is too small (spec/cards.md §1.1).

use super::{Card, Effect, Result};
use crate::apdu::{Apdu, MAX_COMMAND_DATA, MAX_RESPONSE_DATA};
use crate::sw::Sw;
use heapless::Vec as HVec;

/// A command chain being received.
#[derive(Default)]
pub(super) struct Chain {
    /// Base class, INS, P1, P2 of the chain's blocks.
    header: Option<[u8; 4]>,
    data: HVec<u8, MAX_COMMAND_DATA>,
}

/// Response data still to be fetched with GET RESPONSE, from `pos`.
#[derive(Default)]
pub(super) struct Pending {
    data: HVec<u8, MAX_RESPONSE_DATA>,
    pos: usize,
    /// Read from a secret file (see [`Card::last_reply_secret`]).
    secret: bool,
}

impl Pending {
    fn clear(&mut self) {
        self.data.clear();
        self.pos = 0;
        self.secret = false;
    }
}

impl Card {
    /// Processes one command APDU and returns the response APDU.
    pub fn transmit(&mut self, command: &[u8]) -> &[u8] {
        self.wire.clear();
        self.effect = Effect::None;
        self.secret_reply = false;
        self.before = self.vol.session();
        let sw = self.process(command);
        // The wire buffer holds MAX_RESPONSE_DATA + 2 and shaping puts at most
        // MAX_RESPONSE_DATA data bytes in it: the SW always fits.
        let _ = self.wire.extend_from_slice(&sw.to_bytes());
        &self.wire
    }

    /// Convenience for hosts that want an owned response.
    pub fn transmit_vec(&mut self, command: &[u8]) -> Vec<u8> {
        self.transmit(command).to_vec()
    }

    fn process(&mut self, raw: &[u8]) -> Sw {
        self.reply.clear();
        let parsed = Apdu::parse(raw).and_then(|apdu| Ok((apdu, self.profile.class(apdu.cla)?)));
        let (apdu, class) = match parsed {
            Ok(p) => p,
            Err(sw) => {
                self.abort_chain();
                return sw;
            }
        };
        // ISO 7816-3's T=0 carries one length byte: a card that speaks only T=0 never sees
        // an extended APDU, and answers one `6700` (unless firmalab's convenience card).
        if apdu.extended
            && !self.image.has(crate::image::Extension::ExtendedLengthOnT0)
            && crate::image::offers_only_t0(&self.image.atr.0)
        {
            self.abort_chain();
            return Sw::WrongLength;
        }
        // From here on the class byte is its base: profiles parse what the class means.
        let apdu = Apdu { cla: class.base, ..apdu };
        if !(apdu.cla == 0x00 && apdu.ins == 0xC0) {
            self.vol.pending.clear();
        }
        let header = [apdu.cla, apdu.ins, apdu.p1, apdu.p2];
        let chain = &mut self.vol.chain;
        if class.chained {
            if chain.header.is_some_and(|h| h != header) {
                self.abort_chain();
                return Sw::LastCommandExpected;
            }
            if apdu.le.is_some() && !apdu.data.is_empty() {
                // A non-final block carries no Le (ISO 7816-4 §5.1.1.1).
                self.abort_chain();
                return Sw::WrongLength;
            }
            if chain.data.extend_from_slice(apdu.data).is_err() {
                self.abort_chain();
                return Sw::WrongLength;
            }
            chain.header = Some(header);
            return Sw::Ok;
        }
        match chain.header.take() {
            None => self.dispatch(&apdu),
            Some(h) if h != header => {
                chain.data.clear();
                Sw::LastCommandExpected
            }
            Some(_) => {
                let mut data = core::mem::take(&mut chain.data);
                let sw = if data.extend_from_slice(apdu.data).is_err() {
                    Sw::WrongLength
                } else {
                    let whole = Apdu { data: &data, extended: apdu.extended || data.len() > 255, ..apdu };
                    self.dispatch(&whole)
                };
                data.clear();
                self.vol.chain.data = data;
                sw
            }
        }
    }

    fn abort_chain(&mut self) {
        self.vol.chain = Chain::default();
    }

    /// Parses with the profile, executes, shapes the answer.
    fn dispatch(&mut self, apdu: &Apdu<'_>) -> Sw {
        let sw = match self.profile.parse(apdu) {
            Ok(command) if let Some(sw) = self.missing_extension(&command) => return sw,
            Ok(command) => self.execute(command).unwrap_or_else(|sw| sw),
            Err(sw) => return sw,
        };
        self.shape(sw, apdu)
    }

    /// Fits the response data to Le: all of it when it fits (or when Le is absent, the T=0
    /// case-3 quirk, spec/cards.md §1.1); `6Cxx` when a short Le is too small for a short
    /// answer; otherwise Le bytes now and the rest through `61xx` + GET RESPONSE.
    fn shape(&mut self, sw: Sw, apdu: &Apdu<'_>) -> Sw {
        if !matches!(sw, Sw::Ok | Sw::EndOfFile | Sw::MoreData(_)) {
            return sw;
        }
        let chunk = if apdu.extended { MAX_RESPONSE_DATA } else { 256 };
        let ne = apdu.le.unwrap_or(chunk).min(chunk);
        let out = self.reply.as_slice();
        let len = out.len();
        if len <= ne {
            let _ = self.wire.extend_from_slice(out);
            return sw;
        }
        if apdu.le.is_some() && !apdu.extended && len <= 256 {
            return Sw::WrongLe(len as u8);
        }
        let (now, later) = out.split_at(ne);
        let _ = self.wire.extend_from_slice(now);
        let pending = &mut self.vol.pending;
        pending.clear();
        let _ = pending.data.extend_from_slice(later);
        pending.secret = self.secret_reply;
        Sw::MoreData(later.len().min(256) as u8)
    }

    /// GET RESPONSE: the next `le` bytes of what the last command could not give at once.
    pub(super) fn get_response(&mut self, le: usize) -> Result<Sw> {
        let pending = &mut self.vol.pending;
        let rest = pending.data.get(pending.pos..).unwrap_or(&[]);
        if rest.is_empty() {
            return Err(Sw::ConditionsNotSatisfied);
        }
        let n = le.min(rest.len());
        self.reply.push(rest.get(..n).ok_or(Sw::Unknown)?)?;
        self.secret_reply = pending.secret;
        pending.pos += n;
        let left = pending.data.len() - pending.pos;
        if left == 0 {
            pending.clear();
            Ok(Sw::Ok)
        } else {
            Ok(Sw::MoreData(left.min(256) as u8))
        }
    }
}
