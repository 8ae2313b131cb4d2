//! The emulator in this process: no pcscd, no sockets. Holds the image file locked while it
//! lives and saves it after every command that changed the card, rolling the card back when
//! a save fails, exactly like the vpcd host (both are [`HostedCard`]).

use super::{Transport, TransportError};
use firmalab_emulator::image::ImageError;
use firmalab_emulator::timing::Timing;
use firmalab_emulator::vpcd::HostedCard;
use firmalab_emulator::{Card, CardImage, CardRng};
use std::path::PathBuf;

pub struct InProcess {
    pub host: HostedCard,
    label: String,
}

impl InProcess {
    /// A card from an image file, saved back as it changes.
    pub fn open(path: impl Into<PathBuf>, rng: CardRng) -> Result<Self, ImageError> {
        let path = path.into();
        let mut host = HostedCard::open(&path, rng)?;
        host.card.power_on();
        Ok(InProcess { host, label: format!("in-process {}", path.display()) })
    }

    /// An ephemeral card (never saved).
    pub fn ephemeral(image: CardImage, rng: CardRng, label: &str) -> Self {
        let mut card = Card::new(image, rng);
        card.power_on();
        InProcess { host: HostedCard::ephemeral(card), label: format!("in-process {label}") }
    }

    /// Adds a physical token's latency to every command.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.host.timing = timing;
        self
    }

    pub fn card(&self) -> &Card {
        &self.host.card
    }
}

impl Transport for InProcess {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let (response, save_error) = self.host.transmit(command);
        match save_error {
            None => Ok(response),
            Some(e) => Err(TransportError::Other(e)),
        }
    }

    fn atr(&self) -> Vec<u8> {
        self.host.card.atr().to_vec()
    }

    fn name(&self) -> String {
        self.label.clone()
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        self.host.card.reset();
        Ok(())
    }
}
