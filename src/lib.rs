#![doc = include_str!("../README.md")]

pub use responder_core::*;
