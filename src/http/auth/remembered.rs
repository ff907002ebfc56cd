//! Successful secret checks, remembered in memory so a repeated login with the same right
//! credentials costs no argon2 run (and no place in the password pool's queue).
//!
//! What is kept is a set of MACs, never a secret: HMAC-SHA256, under a key drawn at random when
//! the server starts (and never stored), of the principal's id, the stored hash (the PHC
//! string) and the secret. A MAC goes in only after argon2 found the secret right against that
//! hash; a failed check is never remembered, so a wrong secret always costs its argon2 run.
//! Because the stored hash is part of the MAC, and every hash has its own random salt, a new
//! password or secret makes the old entry unreachable by itself: the new hash never gives the
//! same MAC. A deleted user has no stored hash (its name is checked against the decoy hash,
//! which no secret matches), so nothing remembered for it can match either. The key dies with
//! the process, so a restart forgets everything, and nothing is written to disk.
//!
//! At most [`REMEMBERED_MAX`] MACs are kept; when full, an arbitrary one makes way.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::RwLock;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;

use crate::password;

/// MACs kept at most (32 bytes each, about a megabyte with the set's overhead).
const REMEMBERED_MAX: usize = 16_384;

type Mac = [u8; 32];

/// How a credential check verifies a secret against its stored hash.
pub(super) enum Verify {
    /// From memory only (the first try, on the request's own task): a secret not remembered
    /// counts as wrong and is noted as missed, and then the check's answer is not final.
    Remembered { missed: Cell<bool> },
    /// With argon2 where not remembered (on the password pool); a right secret is remembered.
    Argon2,
}

impl Verify {
    /// A first try from memory only.
    pub(super) fn remembered() -> Self {
        Self::Remembered { missed: Cell::new(false) }
    }

    /// Whether a secret was not remembered, so the check must run again with argon2.
    pub(super) fn missed(&self) -> bool {
        matches!(self, Self::Remembered { missed } if missed.get())
    }
}

/// The MACs of the secrets argon2 found right (see the module doc).
pub(super) struct Remembered {
    key: hmac::Key,
    macs: RwLock<HashSet<Mac>>,
}

impl Default for Remembered {
    fn default() -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the operating system's random number generator works");
        Self { key, macs: RwLock::default() }
    }
}

impl Remembered {
    /// Whether `secret` is the one `hash` (the stored hash of `principal`) was made from:
    /// remembered, or as `how` says.
    pub(super) fn verify(&self, how: &Verify, principal: &str, secret: &str, hash: &str) -> bool {
        let mac = self.mac(principal, hash, secret);
        if self.macs.read().unwrap_or_else(|p| p.into_inner()).contains(&mac) {
            return true;
        }
        match how {
            Verify::Remembered { missed } => {
                missed.set(true);
                false
            }
            Verify::Argon2 => {
                let valid = password::verify(secret, hash);
                if valid {
                    self.insert(mac);
                }
                valid
            }
        }
    }

    fn insert(&self, mac: Mac) {
        let mut macs = self.macs.write().unwrap_or_else(|p| p.into_inner());
        if macs.len() >= REMEMBERED_MAX {
            if let Some(any) = macs.iter().next().copied() {
                macs.remove(&any);
            }
        }
        macs.insert(mac);
    }

    /// The MAC of the three, each length-prefixed so no two different triples run together.
    fn mac(&self, principal: &str, hash: &str, secret: &str) -> Mac {
        let mut context = hmac::Context::with_key(&self.key);
        for part in [principal, hash, secret] {
            context.update(&(part.len() as u64).to_le_bytes());
            context.update(part.as_bytes());
        }
        let mut mac = Mac::default();
        mac.copy_from_slice(context.sign().as_ref());
        mac
    }
}
