//! The Redox-style guest kernel (being written).

pub mod scheme;
