//! Normalisers that turn app values into the forms CRMs take: numbers, dates, phone numbers.
//! Each is a pure function of one string that fails with a short reason instead of panicking,
//! and is property-tested for that (and for idempotence where the conversion allows it).

pub mod datetime;
pub mod number;
pub mod phone;
