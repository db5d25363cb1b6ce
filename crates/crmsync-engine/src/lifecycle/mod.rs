//! Lifecycle: what happens to linked records in the CRM beyond edits — deletions (with the
//! mass-deletion guard), merges, and the reconciliation pass that finds what was missed. All of
//! it runs on the sync's leader, since it writes the app database (flags, write-backs).

pub mod conflict;
pub mod deletion;
pub mod merge;
pub mod reconcile;
pub mod retention;
