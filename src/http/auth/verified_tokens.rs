//! The tokens this server has verified, remembered so a token sent again is not verified again.

use std::sync::{Arc, RwLock};

use super::Caller;

/// How many verified tokens are remembered; far more than a test run or load test uses.
const VERIFIED_TOKENS_MAX: usize = 4096;

/// Tokens whose signature and claims were checked, with what they say. Only valid tokens are
/// kept (a garbage token cannot crowd out good ones), expiry is still checked on every use,
/// and the signing key does not change while the server runs, so remembering a token gives
/// the same answer as verifying it again.
///
/// Entries are found by the token's last 16 characters, which are signature (random to
/// anyone without the key) and so make a cheap, even hash key; the whole token must match.
/// The map hashes with foldhash: randomly seeded per map, so keys cannot be chosen to collide,
/// and about a third of SipHash's cost on the request path.
#[derive(Default)]
pub(super) struct VerifiedTokens(RwLock<foldhash::HashMap<[u8; 16], VerifiedToken>>);

/// A whole verified token and what it says.
type VerifiedToken = (Box<str>, Arc<Caller>);

impl VerifiedTokens {
    fn key(token: &str) -> Option<[u8; 16]> {
        token.as_bytes().last_chunk().copied()
    }

    pub(super) fn get(&self, token: &str) -> Option<Arc<Caller>> {
        let tokens = self.0.read().unwrap_or_else(|p| p.into_inner());
        let (known, caller) = tokens.get(&Self::key(token)?)?;
        (**known == *token).then(|| caller.clone())
    }

    pub(super) fn insert(&self, token: &str, caller: Arc<Caller>, now: i64) {
        let Some(key) = Self::key(token) else {
            return;
        };
        let mut tokens = self.0.write().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= VERIFIED_TOKENS_MAX {
            tokens.retain(|_, (_, c)| c.expires > now);
            if tokens.len() >= VERIFIED_TOKENS_MAX {
                tokens.clear();
            }
        }
        tokens.insert(key, (token.into(), caller));
    }
}
