//! Ids the server makes for items created without one: ULIDs (26 characters, the
//! time of creation first), monotonic per node, so key order is creation order even
//! for items created within the same millisecond.

use std::sync::{Mutex, PoisonError};

use ripplekv_core::Error;
use ulid::Generator;

use crate::ItemId;

/// Makes the node's item ids; one per node, shared by every connection.
#[derive(Default)]
pub struct IdGenerator {
    generator: Mutex<Generator>,
}

impl std::fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdGenerator").finish_non_exhaustive()
    }
}

impl IdGenerator {
    /// A generator whose first id follows nothing.
    pub fn new() -> Self {
        IdGenerator::default()
    }

    /// A new id, greater than every id this generator made before. Fails only when a
    /// millisecond's 2^80 ids are used up.
    pub fn next_id(&self) -> Result<ItemId, Error> {
        let ulid = self
            .generator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .generate()
            .map_err(Error::internal)?;
        ItemId::from_text(&ulid.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_rise_even_within_one_millisecond() {
        let ids = IdGenerator::new();
        let made: Vec<String> = (0..1000)
            .map(|_| ids.next_id().unwrap().as_str().to_owned())
            .collect();
        assert!(made.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(made.iter().all(|id| id.len() == 26));
    }
}
