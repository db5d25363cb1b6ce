//! Helpers shared by the binary's scenario tests and benchmarks.

#![allow(dead_code)]

pub mod cli;
pub mod ops;
pub mod prom;
pub mod proxy;
pub mod webdriver;
