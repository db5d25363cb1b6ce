//! The pure domain of crmsync: the config and its validation, field mapping (transforms,
//! validators, status maps) and payload hashing. No network and no database here, so every
//! rule about *what* is synced can be tested without either.

pub mod compose;
pub mod config;
pub mod email;
pub mod hash;
pub mod mapping;
pub mod normalize;
pub mod reverse;
pub mod rule;
pub mod status_map;
pub mod transform;
