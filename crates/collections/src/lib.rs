//! Collections: JSON documents stored as ordinary keys, so the socket.io face, HPKV
//! clients and REST read and edit the same data.
//!
//! An item of collection `c` with id `i` is the key `c/i`, holding the document as a
//! JSON object string (with its `id`, never its `_rev`). This crate holds the rules
//! every face shares and no socket code: which names and ids are valid and which key
//! they make (`names`), how a stored value becomes an item and a client's document a
//! value (`document`), the ids the server makes when a client gives none (`ids`), and
//! list queries (`query`).

mod document;
mod ids;
mod names;
mod query;

pub use document::{item_from_stored, stored_document, REVISION_FIELD};
pub use ids::IdGenerator;
pub use names::{Collection, ItemId};
pub use query::{Listed, PageNumber, Query, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
