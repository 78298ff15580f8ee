//! Session ids: 96 random bits, hex (a cluster prefixes its node, see `Server::new_sid`).

pub(crate) fn new_sid() -> String {
    rand::random::<[u8; 12]>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_differ() {
        assert_ne!(new_sid(), new_sid());
        assert_eq!(new_sid().len(), 24);
    }
}
