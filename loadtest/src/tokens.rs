//! Tokens and conversations from `omnibiz seed --tokens-out FILE`, or minted
//! from a shared secret for the reference peer (which has no database).

use anyhow::Context as _;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub token: String,
    /// `null` for the customers `omnibiz seed --fresh-customers` leaves without one.
    #[serde(rename = "conversationId")]
    pub conversation_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Owner {
    pub token: String,
    pub customers: Vec<Customer>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Seeded {
    pub owners: Vec<Owner>,
}

/// One conversation with both sides' tokens.
#[derive(Debug, Clone)]
pub struct Pair {
    pub owner: String,
    pub customer: String,
    pub conversation: String,
}

pub fn load(path: &std::path::Path) -> anyhow::Result<Vec<Pair>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let seeded: Seeded = serde_json::from_slice(&raw).context("parsing the tokens file")?;
    let mut pairs = Vec::new();
    for o in seeded.owners {
        for c in o.customers {
            if let Some(conversation) = c.conversation_id {
                pairs.push(Pair { owner: o.token.clone(), customer: c.token, conversation });
            }
        }
    }
    anyhow::ensure!(!pairs.is_empty(), "the tokens file has no customer with a conversation");
    Ok(pairs)
}
