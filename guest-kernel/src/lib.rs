//! The Redox-style guest kernel (being written).

pub mod scheme;
pub mod vfs;
