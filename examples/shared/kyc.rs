//! The KYC scoring handler, shared by the examples: a wallet's score (0..=100) is the
//! same every time; wallets named `unknown-*` do not exist.

use kafka_responder::{ErrorReply, Handler, RequestContext};
use serde::{Deserialize, Serialize};

/// Which wallet to score.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KycQuery {
    pub(crate) wallet_id: String,
    /// Identity documents sent with the query (e.g. scans, base64); echoed on the
    /// score so the requester knows what was checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) documents: Vec<String>,
}

/// A wallet's score.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KycScore {
    pub(crate) wallet_id: String,
    pub(crate) score: u8,
    /// The documents the score covers, as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) documents: Vec<String>,
}

/// Why a wallet cannot be scored.
#[derive(Debug)]
pub(crate) enum KycError {
    /// No such wallet.
    UnknownWallet(String),
}

impl From<KycError> for ErrorReply {
    fn from(e: KycError) -> Self {
        match e {
            KycError::UnknownWallet(w) => {
                ErrorReply::new("not_found", format!("unknown wallet {w}"))
            }
        }
    }
}

/// Scores wallets: the same wallet gets the same score (0..=100) every time.
#[derive(Handler)]
#[handler(
    topic = "WALLET-KYC-REQUEST",
    codec = json,
    request = KycQuery,
    reply = KycScore,
    error = KycError,
    method = score
)]
pub(crate) struct Kyc;

impl Kyc {
    async fn score(&self, req: KycQuery, _cx: &RequestContext) -> Result<KycScore, KycError> {
        if req.wallet_id.starts_with("unknown-") {
            return Err(KycError::UnknownWallet(req.wallet_id));
        }
        // FNV-1a: stable across runs and platforms.
        let hash = req
            .wallet_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        Ok(KycScore {
            score: (hash % 101) as u8,
            wallet_id: req.wallet_id,
            documents: req.documents,
        })
    }
}
